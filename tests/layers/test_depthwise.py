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


_JAX_ONLY = pytest.mark.skipif(BACKEND != "jax", reason="the custom VJP is JAX's path only")


def _jax_gradients(cases, custom_vjp, sliced=True):
    """Per case (x, kernel, cotangent, depthwise_conv's arguments): the gradients of
    sum(depthwise_conv(x, kernel) * cotangent) for x and kernel, with the sliced form's
    backward kcnn's custom VJP or autodiff's (read while tracing). All cases in one
    `jax.jit`: one compilation (eager JAX would compile every op of every case)."""
    import jax

    from kcnn.layers import conv

    def gradients(arrays):
        conv._DEPTHWISE_VJP = custom_vjp
        try:
            return [jax.grad(lambda x, k: (depthwise_conv(x, k, sliced=sliced, **args)
                                           * cotangent).sum(), argnums=(0, 1))(x, kernel)
                    for (x, kernel, cotangent), (*_, args) in zip(arrays, cases)]
        finally:
            conv._DEPTHWISE_VJP = True

    arrays = [case[:3] for case in cases]
    result = jax.jit(gradients)(arrays)
    return [[_np(g) for g in pair] for pair in result]


# (data format, depth multiplier, kernel size, input size, strides, padding): every
# combination in channels_last with multiplier 1, and the odd and even "same" pads of
# both strides in the other layouts and multipliers.
_VJP_CASES = (
    [("channels_last", 1) + combo for combo in itertools.product(
        [3, 5], [9, 10], [1, 2], ["valid", "same"])]
    + [(data_format, multiplier, kernel_size, size, strides, "same")
       for data_format, multiplier in [("channels_first", 1), ("channels_last", 2),
                                       ("channels_first", 2)]
       for kernel_size, size, strides in [(3, 10, 2), (5, 9, 2), (3, 9, 1)]])


@_JAX_ONLY
def test_custom_vjp_gradients_equal_autodiff_and_native_convolution():
    """Input and kernel gradients of the custom VJP (under jit) against autodiff through
    the same slices and through XLA's depthwise convolution: both layouts, depth
    multipliers 1 and 2, kernels 3 and 5, strides 1 and 2, "valid" and Keras's "same",
    odd and even sizes; batch 5 so the halving meets odd sizes (5, 3)."""
    import jax

    rng = np.random.default_rng(4)
    cases = []
    for data_format, multiplier, kernel_size, size, strides, padding in _VJP_CASES:
        shape = (5, size, size, 3) if data_format == "channels_last" else (5, 3, size, size)
        x = rng.normal(size=shape).astype("float32")
        kernel = rng.normal(size=(kernel_size, kernel_size, 3, multiplier)).astype("float32")
        args = dict(strides=strides, padding=padding, data_format=data_format)
        out_shape = jax.eval_shape(lambda x, k: depthwise_conv(x, k, **args), x, kernel).shape
        cases.append((x, kernel, rng.normal(size=out_shape).astype("float32"), args))
    custom = _jax_gradients(cases, True)
    for name, reference in (("autodiff", _jax_gradients(cases, False)),
                            ("native", _jax_gradients(cases, False, sliced=False))):
        for case, ours, theirs in zip(cases, custom, reference):
            for which, a, b in zip(("input", "kernel"), ours, theirs):
                assert a.shape == b.shape
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(),
                                           err_msg=f"{which} vs {name}: {case[1].shape=} "
                                                   f"{case[0].shape=} {case[3]}")


@_JAX_ONLY
def test_custom_vjp_is_the_layers_backward_on_jax():
    """The layer's gradient goes through the custom VJP, not autodiff of the slices."""
    import jax

    layer = DepthwiseConv2D(3, strides=2, padding="same")
    x = np.ones((2, 9, 9, 4), "float32")
    layer.build(x.shape)
    assert "custom_vjp_call" in str(jax.make_jaxpr(layer.call)(x))
    gradient = str(jax.make_jaxpr(jax.grad(lambda x: layer.call(x).sum()))(x))
    assert "conv_general_dilated" not in gradient


@_JAX_ONLY
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_custom_vjp_in_half_precision_matches_float32(dtype):
    """What a mixed-precision layer computes (input and kernel in the compute dtype):
    gradients come back in that dtype, near float32's (the kernel gradient is summed
    in float32)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 10, 10, 3)).astype("float32")
    kernel = rng.normal(size=(3, 3, 3, 2)).astype("float32")
    cotangent = rng.normal(size=(4, 5, 5, 6)).astype("float32")
    args = dict(strides=2, padding="same", data_format="channels_last")
    full, = _jax_gradients([(x, kernel, cotangent, args)], True)
    half, = _jax_gradients([(jnp.asarray(x, dtype), jnp.asarray(kernel, dtype),
                             jnp.asarray(cotangent, dtype), args)], True)
    for ours, reference in zip(half, full):
        assert ours.dtype == np.dtype(jnp.dtype(dtype))
        np.testing.assert_allclose(ours.astype("float32"), reference, rtol=0,
                                   atol=0.02 * np.abs(reference).max())


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
