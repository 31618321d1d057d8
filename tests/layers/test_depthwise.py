"""kcnn's DepthwiseConv2D is Keras's layer, computed as shifted slices on JAX."""

import itertools

import keras
import numpy as np
import pytest
from keras.src import testing

import kcnn
from kcnn.layers.conv import DepthwiseConv2D, depthwise_conv
from tests.utils import assert_same_sgd_step

BACKEND = keras.backend.backend()


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_sliced_form_equals_the_native_depthwise_convolution(data_format, multiplier):
    """Both formulations, on this backend, for every stride, padding, kernel and size used."""
    rng = np.random.default_rng(0)
    for (kernel_size, size), strides, padding in itertools.product(
            [(3, 9), (5, 10)], [1, 2], ["valid", "same"]):
        shape = (2, size, size, 3) if data_format == "channels_last" else (2, 3, size, size)
        x = rng.normal(size=shape).astype("float32")
        kernel = rng.normal(size=(kernel_size, kernel_size, 3, multiplier)).astype("float32")
        args = dict(strides=strides, padding=padding, data_format=data_format)
        sliced = _np(depthwise_conv(x, kernel, sliced=True, **args))
        native = _np(depthwise_conv(x, kernel, sliced=False, **args))
        assert sliced.shape == native.shape
        np.testing.assert_allclose(sliced, native, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{kernel_size=} {strides=} {padding=} {size=}")


class _Sliced(DepthwiseConv2D):
    _sliced = True


class _Native(DepthwiseConv2D):
    _sliced = False


@pytest.mark.parametrize("kernel_size,multiplier", [(3, 1), (5, 2)])
def test_gradients_of_both_forms_are_equal(kernel_size, multiplier):
    """One SGD step changes every weight alike, before and inside the depthwise layer.

    The 1x1 convolution in front receives the depthwise layer's input
    gradient, so equal updates there mean equal input gradients too.
    """
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 10, 10, 4)).astype("float32")
    y = rng.normal(size=(2, 5, 5, 6 * multiplier)).astype("float32")
    assert_same_sgd_step(lambda layer_cls: keras.Sequential([
        keras.Input((10, 10, 4)),
        keras.layers.Conv2D(6, 1),
        layer_cls(kernel_size, strides=2, padding="same", depth_multiplier=multiplier),
    ]), (_Sliced, _Native), x, y)


def test_layer_equals_keras_depthwise_conv2d():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 9, 9, 4)).astype("float32")
    kwargs = dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2,
                  activation="relu")
    ours, reference = DepthwiseConv2D(**kwargs), keras.layers.DepthwiseConv2D(**kwargs)
    ours.build(x.shape)
    reference.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in reference.get_weights()]
    ours.set_weights(weights)
    reference.set_weights(weights)
    np.testing.assert_allclose(_np(ours(x)), _np(reference(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(BACKEND != "jax", reason="the sliced form is the fast one on JAX only")
def test_jax_runs_slices_not_xla_depthwise_convolution():
    import jax

    layer = DepthwiseConv2D(3, strides=2, padding="same")
    x = np.zeros((2, 9, 9, 4), "float32")
    layer.build(x.shape)
    jaxpr = str(jax.make_jaxpr(layer.call)(x))
    assert "conv_general_dilated" not in jaxpr
    native = str(jax.make_jaxpr(_Native(3, strides=2, padding="same").__call__)(x))
    assert "conv_general_dilated" in native  # the check above can see a convolution


def test_keras_file_of_keras_layer_loads_and_equals_kcnn_layer(tmp_path):
    """A model saved before kcnn had its own layer (Keras's) loads and computes the same."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 9, 9, 4)).astype("float32")
    old = keras.Sequential([keras.Input((9, 9, 4)),
                            keras.layers.DepthwiseConv2D(3, strides=2, padding="same")])
    old.set_weights([rng.normal(size=w.shape).astype("float32") for w in old.get_weights()])
    old.save(tmp_path / "old.keras")
    restored = keras.saving.load_model(tmp_path / "old.keras")
    ours = keras.Sequential([keras.Input((9, 9, 4)), DepthwiseConv2D(3, strides=2, padding="same")])
    ours.set_weights(restored.get_weights())
    np.testing.assert_allclose(_np(ours(x)), _np(old(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(restored(x)), _np(old(x)), rtol=1e-6, atol=1e-6)
    ours.save(tmp_path / "ours.keras")
    again = keras.saving.load_model(tmp_path / "ours.keras")
    assert type(again.layers[0]) is DepthwiseConv2D
    np.testing.assert_array_equal(_np(again(x)), _np(ours(x)))


@pytest.mark.skipif(BACKEND != "torch", reason="which layer a builder uses does not depend "
                    "on the backend: checked once, on torch")
def test_mobile_builders_use_kcnn_depthwise_layer():
    for builder in (kcnn.mobilenet_v2, kcnn.efficientnet_b0):
        model = builder(weights=None, input_shape=(32, 32, 3), classes=10)
        depthwise = [layer for layer in model.layers
                     if isinstance(layer, keras.layers.DepthwiseConv2D)]
        assert depthwise and all(type(layer) is DepthwiseConv2D for layer in depthwise)


class DepthwiseConv2DLayerTest(testing.TestCase):
    """Keras's own layer checks: build, serialization, a training step, mixed precision."""

    def test_run_layer_test(self):
        self.run_layer_test(
            DepthwiseConv2D,
            init_kwargs={"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
            input_shape=(2, 5, 5, 3),
            expected_output_shape=(2, 5, 5, 6),
            expected_num_trainable_weights=2,
            expected_num_non_trainable_weights=0,
        )
