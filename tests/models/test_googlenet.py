import os

import keras
import numpy as np
import pytest

import kcnn
from kcnn.models.googlenet import GoogLeNetInputTransform
from tests.utils import trainable_count


def aux_head_params(in_channels, classes=1000):
    """1x1 conv to 128 (no bias) + BN, fc 2048 -> 1024, fc 1024 -> classes."""
    return in_channels * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * classes + classes


def batch(shape, seed=0):
    return np.random.default_rng(seed).normal(size=(2, *shape)).astype("float32")


def forward(model, x):
    """The model's outputs as numpy arrays.

    On JAX, `predict` compiles the model as one program (about 8 s for
    GoogLeNet here), an eager call compiles each operation (about 40 s).
    """
    if keras.backend.backend() == "jax":
        return model.predict(x, batch_size=len(x), verbose=0)
    outputs = model(x, training=False)
    if isinstance(outputs, (list, tuple)):
        return [keras.ops.convert_to_numpy(y) for y in outputs]
    return keras.ops.convert_to_numpy(outputs)


@pytest.fixture(scope="module")
def aux_model():
    """The training model (1000 classes, transformed input, three outputs).

    Built once per module: on JAX the first GoogLeNet build compiles an
    initializer per weight shape (about a minute here).
    """
    keras.utils.set_random_seed(0)
    return kcnn.googlenet(input_shape=(64, 64, 3), aux_logits=True,
                          transform_input=True)


def test_reference_parameter_counts(aux_model):
    assert trainable_count(kcnn.googlenet()) == 6_624_904
    assert trainable_count(aux_model) == 13_004_888 == (
        6_624_904 + aux_head_params(512) + aux_head_params(528))


def test_layers_have_torchvision_names_and_its_3x3_fifth_branch(aux_model):
    model = aux_model
    assert model.get_layer("conv1_conv").kernel.shape == (7, 7, 3, 64)
    assert model.get_layer("conv1_bn").epsilon == 1e-3
    assert model.get_layer("inception3a_branch1_conv").kernel.shape == (1, 1, 192, 64)
    assert model.get_layer("inception3a_branch2_0_conv").kernel.shape == (1, 1, 192, 96)
    # torchvision's "5x5" branch is a 3x3 convolution.
    assert model.get_layer("inception3a_branch3_1_conv").kernel.shape == (3, 3, 16, 32)
    assert model.get_layer("inception3a_branch4_1_conv").kernel.shape == (1, 1, 192, 32)
    assert model.get_layer("aux1_conv_conv").kernel.shape == (1, 1, 512, 128)
    assert model.get_layer("aux2_conv_conv").kernel.shape == (1, 1, 528, 128)
    assert model.get_layer("aux1_fc1").kernel.shape == (2048, 1024)
    assert model.get_layer("fc").kernel.shape == (1024, 1000)
    # torch's ceil-mode pools at 64x64: 32 -> 16 -> 8 -> 4 -> 2 (floor: 15 at the first).
    for pool, size in [("maxpool1", 16), ("maxpool2", 8), ("maxpool3", 4),
                       ("maxpool4", 2)]:
        assert model.get_layer(pool).output.shape[1:3] == (size, size)


def test_aux_model_has_three_outputs_in_torchvision_order(aux_model):
    assert aux_model.output_names == ["predictions", "aux2_predictions",
                                      "aux1_predictions"]
    outputs = forward(aux_model, batch((64, 64, 3)))
    assert [y.shape for y in outputs] == [(2, 1000)] * 3
    for y in outputs:
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_aux_model_round_trips_through_a_keras_file(aux_model, tmp_path):
    path = os.fspath(tmp_path / "googlenet.keras")
    aux_model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("transform_input"), GoogLeNetInputTransform)
    x = batch((64, 64, 3), seed=1)
    for got, want in zip(forward(loaded, x), forward(aux_model, x)):
        np.testing.assert_array_equal(got, want)


def test_transform_input_is_torchvisions_renormalisation():
    to_numpy = keras.ops.convert_to_numpy
    x = batch((5, 4, 3))
    got = to_numpy(GoogLeNetInputTransform(data_format="channels_last")(x))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    # ImageNet-normalised pixels p become (p - 0.5) / 0.5.
    np.testing.assert_allclose(got, ((x * std + mean) - 0.5) / 0.5, rtol=1e-5, atol=1e-6)
    first = GoogLeNetInputTransform(data_format="channels_first")(np.moveaxis(x, -1, 1))
    np.testing.assert_allclose(np.moveaxis(to_numpy(first), 1, -1), got, rtol=1e-6)


def test_any_input_size_down_to_15_without_aux():
    model = kcnn.googlenet(input_shape=(None, None, 3), classes=10)
    assert forward(model, batch((15, 15, 3))).shape == (2, 10)
    assert forward(model, batch((33, 50, 3))).shape == (2, 10)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 7, 7, 1024)),
                                            ("avg", (None, 1024)),
                                            ("max", (None, 1024))])
def test_include_top_false_pooling(pooling, shape):
    model = kcnn.googlenet(include_top=False, pooling=pooling)
    assert model.output_shape == shape


def test_grayscale_input_and_input_tensor():
    inputs = keras.Input((None, None, 1))
    model = kcnn.googlenet(input_tensor=inputs, include_top=False, pooling="avg")
    assert model.get_layer("conv1_conv").kernel.shape == (7, 7, 1, 64)
    assert model.output_shape == (None, 1024)
    assert model.inputs[0] is inputs


def test_channels_first_forward(channels_first):
    model = kcnn.googlenet(input_shape=(3, 32, 32), classes=10, transform_input=True)
    assert model.get_layer("maxpool1").output.shape[1:] == (64, 8, 8)
    assert forward(model, batch((3, 32, 32))).shape == (2, 10)


def test_mixed_precision_logits_of_every_head_are_float32():
    # The auxiliary heads use the main head's classifier: losses and softmax
    # read float32 logits from all three, as Keras's mixed-precision guide has it.
    keras.config.set_dtype_policy("mixed_float16")
    model = kcnn.googlenet(input_shape=(32, 32, 3), classes=5, aux_logits=True,
                           classifier_activation=None)
    assert [keras.backend.standardize_dtype(y.dtype) for y in model.outputs] == [
        "float32"] * 3
    assert model.get_layer("aux1_fc2").compute_dtype == "float32"


def test_registry_name():
    assert "googlenet" in kcnn.list_models("googlenet")
    model = kcnn.create_model("googlenet", include_top=False, pooling="avg",
                              input_shape=(32, 32, 3))
    assert model.name == "googlenet"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"input_shape=\(14, 14, 3\).*at least 15"):
        kcnn.googlenet(input_shape=(14, 14, 3))
    with pytest.raises(ValueError, match="aux_logits=True needs a fixed input size"):
        kcnn.googlenet(input_shape=(None, None, 3), aux_logits=True)
    with pytest.raises(ValueError, match="include_top=True"):
        kcnn.googlenet(include_top=False, aux_logits=True)
    with pytest.raises(ValueError, match="3 input channels"):
        kcnn.googlenet(input_shape=(32, 32, 1), transform_input=True)
    with pytest.raises(ValueError, match=r"dropout_aux=1\.0"):
        kcnn.googlenet(dropout_aux=1.0)
    with pytest.raises(ValueError, match=r"aux_logits='yes'"):
        kcnn.googlenet(aux_logits="yes")
