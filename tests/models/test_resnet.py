import keras
import numpy as np
import pytest

import kcnn
from tests.utils import counted_once, reference_count

# torchvision's parameter counts at 224x224 and 1000 classes.
REFERENCE_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}



def _images(n, h, w, c=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, w, c)).astype("float32")


@pytest.fixture(scope="module")
def resnet18_any_size():
    """Built once: on JAX every model and input size compiles anew."""
    return kcnn.resnet18(input_shape=(None, None, 3), classes=10)


@pytest.fixture(scope="module")
def resnet50_32():
    return kcnn.resnet50(input_shape=(32, 32, 3), classes=10)


@counted_once
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_parameter_count(name):
    assert reference_count(name) == REFERENCE_COUNTS[name]


def test_resnet18_layer_names_are_torchvision_state_dict_paths(resnet18_any_size):
    expected = {"conv1", "bn1", "fc"}
    for stage in range(1, 5):
        for block in range(2):
            expected |= {f"layer{stage}_{block}_{module}"
                         for module in ("conv1", "bn1", "conv2", "bn2")}
        if stage > 1:
            expected |= {f"layer{stage}_0_downsample_0", f"layer{stage}_0_downsample_1"}
    assert {layer.name for layer in resnet18_any_size.layers if layer.weights} == expected


def test_any_size_forward_at_two_sizes(resnet18_any_size):
    for h, w in ((32, 32), (64, 48)):
        y = keras.ops.convert_to_numpy(resnet18_any_size(_images(2, h, w)))
        assert y.shape == (2, 10)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_round_trip_gives_identical_outputs(resnet18_any_size, tmp_path):
    path = tmp_path / "resnet18.keras"
    resnet18_any_size.save(path)
    loaded = keras.saving.load_model(path)
    x = _images(2, 32, 32, seed=1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)),
                                  keras.ops.convert_to_numpy(resnet18_any_size(x)))
    assert loaded.metadata == resnet18_any_size.metadata


def test_resnet50_forward_and_v1_5_strides(resnet50_32):
    y = resnet50_32(_images(2, 32, 32))
    assert tuple(y.shape) == (2, 10)
    # v1.5: the bottleneck strides on its 3x3 convolution, not the first 1x1.
    assert resnet50_32.get_layer("layer2_0_conv1").strides == (1, 1)
    assert resnet50_32.get_layer("layer2_0_conv2").strides == (2, 2)
    assert resnet50_32.get_layer("layer2_0_downsample_0").strides == (2, 2)
    # layer1 keeps the size but widens 64 -> 256: a projection, stride 1.
    assert resnet50_32.get_layer("layer1_0_downsample_0").strides == (1, 1)
    assert not resnet50_32.get_layer("conv1").use_bias
    assert resnet50_32.get_layer("bn1").epsilon == 1e-5


@pytest.mark.parametrize("pooling, shape", [(None, (None, 1, 1, 2048)),
                                            ("avg", (None, 2048)),
                                            ("max", (None, 2048))])
def test_include_top_false_pooling(pooling, shape):
    model = kcnn.resnet50(include_top=False, pooling=pooling, input_shape=(32, 32, 3))
    assert model.output_shape == shape


def test_grayscale_forward_without_top():
    model = kcnn.resnet18(include_top=False, pooling="avg", input_shape=(32, 32, 1))
    assert model.get_layer("conv1").kernel.shape == (7, 7, 1, 64)
    assert tuple(model(_images(2, 32, 32, c=1)).shape) == (2, 512)


def test_input_tensor():
    inputs = keras.Input((32, 32, 3))
    model = kcnn.resnet18(input_tensor=inputs, include_top=False)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 1, 1, 512)


def test_channels_first_forward(channels_first):
    model = kcnn.resnet18(input_shape=(3, 32, 32), classes=4)
    assert model.get_layer("bn1").axis in (1, [1])
    x = _images(2, 32, 32).transpose(0, 3, 1, 2)
    assert tuple(model(x).shape) == (2, 4)


@pytest.mark.parametrize("shape", [(31, 32, 3), (32, 16, 3)])
def test_too_small_input_is_refused(shape):
    with pytest.raises(ValueError, match=r"too small for resnet18.*at least 32"):
        kcnn.resnet18(input_shape=shape)


def test_registry_builds_by_name():
    model = kcnn.create_model("resnet34", include_top=False, input_shape=(32, 32, 3))
    assert model.name == "resnet34"
    assert "resnet152" in kcnn.list_models("resnet*")
