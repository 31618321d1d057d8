"""MobileNetV2. One model is built and run once for the module: on JAX every
new model costs seconds of compilation (XLA on CPU is slow on depthwise
convolutions), so the other tests only build, which is cheap.
"""

import keras
import numpy as np
import pytest

import kcnn
from tests.utils import counted_once, reference_count, trainable_count

X = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")



@pytest.fixture(scope="module")
def model():
    keras.backend.clear_session()
    return kcnn.mobilenet_v2(input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def probabilities(model):
    # predict compiles the whole graph on JAX: much faster there than running
    # the first call op by op.
    return model.predict(X, batch_size=2, verbose=0)


def test_reference_parameter_count(model):
    assert trainable_count(model) == 3_504_872


def test_default_input_and_metadata():
    model = kcnn.mobilenet_v2()
    assert model.input_shape == (None, 224, 224, 3)
    assert model.metadata["preprocessing"]["crop"] == 224
    assert model.metadata["preprocessing"]["resize"] == 256


def test_forward_pass_on_any_size_gives_probabilities(probabilities):
    assert probabilities.shape == (2, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_layout_follows_torchvision(model):
    # features_0: 3x3/2 with torch's symmetric padding; features_1 has no
    # expansion (t = 1), the others start with one; features_18 goes to 1280.
    assert model.get_layer("features_0_0").padding == (1, 1)
    assert isinstance(model.get_layer("features_1_conv_0_0"), keras.layers.DepthwiseConv2D)
    assert model.get_layer("features_1_conv_1").kernel.shape == (1, 1, 32, 16)
    assert isinstance(model.get_layer("features_1_conv_2"), keras.layers.BatchNormalization)
    assert model.get_layer("features_2_conv_0_0").kernel.shape == (1, 1, 16, 96)
    assert model.get_layer("features_2_conv_1_0").strides == (2, 2)
    assert model.get_layer("features_2_conv_1_0").padding == (1, 1)
    assert model.get_layer("features_18_0").kernel.shape == (1, 1, 320, 1280)
    assert model.get_layer("classifier_0").rate == 0.2
    assert model.get_layer("classifier_1").kernel.shape == (1280, 1000)
    assert model.get_layer("features_0_1").epsilon == 1e-5
    names = [layer.name for layer in model.layers]
    assert "features_3_add" in names and "features_2_add" not in names


@counted_once  # allocated, new weight shapes would cost 20 s each on JAX
@pytest.mark.parametrize("width_mult, count", [(0.5, 1_968_680), (1.4, 6_108_776)])
def test_width_multiplier_matches_torchvision(width_mult, count):
    assert reference_count("mobilenet_v2", width_mult=width_mult) == count


@pytest.mark.parametrize("pooling, shape", [(None, (None, 1, 1, 1280)),
                                            ("avg", (None, 1280)),
                                            ("max", (None, 1280))])
def test_include_top_false_pooling(pooling, shape):
    model = kcnn.mobilenet_v2(include_top=False, pooling=pooling,
                              input_shape=(32, 32, 3))
    assert model.output_shape == shape


def test_input_tensor():
    inputs = keras.Input((64, 48, 3))
    model = kcnn.mobilenet_v2(input_tensor=inputs, classes=7)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 7)


def test_grayscale_input():
    model = kcnn.mobilenet_v2(input_shape=(32, 32, 1), classes=10)
    assert model.get_layer("features_0_0").kernel.shape == (3, 3, 1, 32)
    assert trainable_count(model) == 2_236_682 - 2 * 3 * 3 * 32


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match=r"input_shape=\(31, 64, 3\).*at least 32"):
        kcnn.mobilenet_v2(input_shape=(31, 64, 3))


@pytest.mark.parametrize("argument", [{"width_mult": 0}, {"width_mult": "1"},
                                      {"dropout": 1.0}, {"dropout": -0.1}])
def test_bad_family_arguments_are_refused(argument):
    (key, value), = argument.items()
    with pytest.raises(ValueError, match=rf"{key} must be .*received {key}={value!r}"):
        kcnn.mobilenet_v2(**argument)


def test_channels_first(channels_first):
    model = kcnn.mobilenet_v2(input_shape=(3, 32, 32), classes=5)
    assert model.get_layer("features_0_1").axis in (1, [1])
    y = model.predict(X.transpose(0, 3, 1, 2), batch_size=2, verbose=0)
    assert y.shape == (2, 5)


def test_registry_name():
    model = kcnn.create_model("mobilenet_v2", classes=3, input_shape=(32, 32, 3))
    assert model.name == "mobilenet_v2"
    assert model.output_shape == (None, 3)


def test_keras_file_round_trip(model, probabilities, tmp_path):
    path = tmp_path / "mobilenet_v2.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.metadata == model.metadata
    np.testing.assert_array_equal(loaded.predict(X, batch_size=2, verbose=0),
                                  probabilities)
