import keras
import numpy as np
import pytest

import kcnn
from tests.utils import counted_once, reference_count

# torchvision's parameter counts at 224x224 and 1000 classes.
REFERENCE_COUNTS = {
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
}

# The parametric modules of torchvision's vgg11_bn state dict, "." as "_".
VGG11_BN_WEIGHTED = {
    "features_0", "features_1", "features_4", "features_5", "features_8",
    "features_9", "features_11", "features_12", "features_15", "features_16",
    "features_18", "features_19", "features_22", "features_23", "features_25",
    "features_26", "classifier_0", "classifier_3", "classifier_6",
}



@pytest.fixture(scope="module")
def vgg11_bn_32():
    """Built once: on JAX every model and input size compiles anew."""
    return kcnn.vgg11_bn(input_shape=(32, 32, 3), classes=10, dropout=0.3)


@counted_once
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_parameter_count(name):
    assert reference_count(name) == REFERENCE_COUNTS[name]


def test_forward_at_the_smallest_input_keeps_the_reference_head(vgg11_bn_32):
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(vgg11_bn_32(x))
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert vgg11_bn_32.get_layer("classifier_0").kernel.shape == (25088, 4096)


def test_layer_names_are_torchvision_state_dict_paths(vgg11_bn_32):
    weighted = {layer.name for layer in vgg11_bn_32.layers if layer.weights}
    assert weighted == VGG11_BN_WEIGHTED
    assert isinstance(vgg11_bn_32.get_layer("features_28"), keras.layers.MaxPooling2D)
    assert vgg11_bn_32.get_layer("features_1").epsilon == 1e-5
    # torchvision keeps the convolution bias before batch norm.
    assert vgg11_bn_32.get_layer("features_0").use_bias


def test_dropout_rate_is_configurable_and_checked(vgg11_bn_32):
    assert vgg11_bn_32.get_layer("classifier_2").rate == 0.3
    assert vgg11_bn_32.get_layer("classifier_5").rate == 0.3
    with pytest.raises(ValueError, match=r"dropout=1\.5"):
        kcnn.vgg16(dropout=1.5)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 2, 2, 512)),
                                            ("avg", (None, 512)),
                                            ("max", (None, 512))])
def test_include_top_false_pooling(pooling, shape):
    model = kcnn.vgg11(include_top=False, pooling=pooling, input_shape=(64, 64, 3))
    assert model.output_shape == shape


def test_any_size_only_without_top():
    with pytest.raises(ValueError, match=r"vgg16 with include_top=True needs a fixed"):
        kcnn.vgg16(input_shape=(None, None, 3))
    model = kcnn.vgg16(include_top=False, input_shape=(None, None, 3))
    assert model.output_shape == (None, None, None, 512)


def test_grayscale_and_input_tensor():
    inputs = keras.Input((32, 32, 1))
    model = kcnn.vgg11(include_top=False, input_tensor=inputs)
    assert model.inputs[0] is inputs
    assert model.get_layer("features_0").kernel.shape == (3, 3, 1, 64)


def test_channels_first_builds_the_same_head(channels_first):
    model = kcnn.vgg11(include_top=False, pooling="avg", input_shape=(3, 32, 32))
    assert model.output_shape == (None, 512)
    assert model.get_layer("features_1").output.shape == (None, 64, 32, 32)


@pytest.mark.parametrize("shape", [(31, 31, 3), (224, 16, 3)])
def test_too_small_input_is_refused(shape):
    with pytest.raises(ValueError, match=r"too small for vgg11.*at least 32"):
        kcnn.vgg11(input_shape=shape)


def test_registry_builds_by_name():
    model = kcnn.create_model("vgg19_bn", include_top=False, input_shape=(32, 32, 3))
    assert model.name == "vgg19_bn"
    assert len(kcnn.list_models("vgg*")) == 8
