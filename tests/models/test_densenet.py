import os

import keras
import numpy as np
import pytest

import kcnn
from kcnn.inspect import without_weights
from tests.utils import counted_once, reference_count



def forward(model, x):
    # On JAX, `predict` compiles the model as one program; an eager call
    # compiles every operation separately and takes several times longer.
    if keras.backend.backend() == "jax":
        return model.predict(x, batch_size=len(x), verbose=0)
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def densenet_run():
    """One DenseNet-121 of any input size and its outputs on a 32x32 batch.

    Built and run once per module: on JAX the first build compiles an
    initializer per weight shape and the first run compiles the model.
    """
    keras.utils.set_random_seed(0)
    model = kcnn.densenet121(input_shape=(None, None, 3), classes=10)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    return model, x, forward(model, x)


def test_forward_pass_at_32x32_gives_probabilities(densenet_run):
    _, _, y = densenet_run
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_round_trip_through_a_keras_file(densenet_run, tmp_path):
    model, x, y = densenet_run
    path = os.fspath(tmp_path / "densenet121.keras")
    model.save(path)
    np.testing.assert_array_equal(forward(keras.saving.load_model(path), x), y)


def test_layers_have_torchvision_names(densenet_run):
    model, _, _ = densenet_run
    assert model.get_layer("features_conv0").kernel.shape == (7, 7, 3, 64)
    assert model.get_layer("features_norm0").epsilon == 1e-5
    layer = "features_denseblock1_denselayer1"
    assert model.get_layer(f"{layer}_norm1").gamma.shape == (64,)
    assert model.get_layer(f"{layer}_conv1").kernel.shape == (1, 1, 64, 128)
    assert model.get_layer(f"{layer}_conv2").kernel.shape == (3, 3, 128, 32)
    # 64 + 6 * 32 channels, halved by the first transition.
    assert model.get_layer("features_transition1_conv").kernel.shape == (1, 1, 256, 128)
    assert model.get_layer("features_denseblock4_denselayer16_conv2").kernel.shape == (
        3, 3, 128, 32)
    assert model.get_layer("features_norm5").gamma.shape == (1024,)
    assert model.get_layer("classifier").kernel.shape == (1024, 10)


def test_registry_name():
    with without_weights():  # the name only
        assert kcnn.create_model("densenet121").name == "densenet121"
    assert kcnn.list_models("densenet*") == ["densenet121", "densenet161",
                                             "densenet169", "densenet201"]


@counted_once
@pytest.mark.parametrize("builder, count", [("densenet121", 7_978_856),
                                            ("densenet161", 28_681_000),
                                            ("densenet169", 14_149_480),
                                            ("densenet201", 20_013_928)])
def test_reference_parameter_count(builder, count):
    assert reference_count(builder) == count


@pytest.mark.parametrize("pooling, shape", [(None, (None, 7, 7, 1024)),
                                            ("avg", (None, 1024)),
                                            ("max", (None, 1024))])
def test_include_top_false_pooling(pooling, shape):
    assert kcnn.densenet121(include_top=False, pooling=pooling).output_shape == shape


def test_smallest_grayscale_input_from_an_input_tensor():
    inputs = keras.Input((29, 29, 1))
    model = kcnn.densenet121(input_tensor=inputs, include_top=False)
    assert model.inputs[0] is inputs
    assert model.get_layer("features_conv0").kernel.shape == (7, 7, 1, 64)
    # 29 -> 15 -> 8 -> 4 -> 2 -> 1
    assert model.output_shape == (None, 1, 1, 1024)


def test_channels_first_layout(channels_first):
    model = kcnn.densenet121(input_shape=(3, 32, 32), include_top=False)
    assert model.get_layer("features_transition1_pool").output.shape[1:] == (128, 4, 4)
    assert model.output_shape == (None, 1024, 1, 1)


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match=r"input_shape=\(28, 28, 3\).*at least 29"):
        kcnn.densenet121(input_shape=(28, 28, 3))
