"""LocalResponseNormalization: the paper's formula, on every implementation this backend has.

References: a float64 numpy transcription of the paper's formula,
`tf.nn.local_response_normalization` (forward and, through tf.GradientTape, its
gradient) and torch's `nn.LocalResponseNorm`. Inputs have standard deviation 100
(30 for gradients) where the alpha convention matters: at 1 a wrong convention
changes outputs by under 0.2%.
"""

import re

import keras
import numpy as np
import pytest
from keras.src import testing

from kcnn.layers import LocalResponseNormalization
from kcnn.layers import lrn

BACKEND = keras.backend.backend()
FORMATS = ("channels_last", "channels_first")

# Every implementation that exists on this backend, and the layouts it serves.
PATHS = {"common": (lrn._lrn_ops, FORMATS)}
if BACKEND == "tensorflow":
    PATHS["tensorflow"] = (lrn._lrn_tensorflow, ("channels_last",))
if BACKEND == "torch":
    PATHS["torch"] = (lrn._lrn_torch, FORMATS)


def reference_lrn(a, size=5, alpha=1e-4, beta=0.75, k=2.0, axis=-1):
    """b_c = a_c / (k + alpha * sum_{max(0, c-n/2)}^{min(N-1, c+n/2)} a_j^2)^beta, float64."""
    a = np.moveaxis(np.asarray(a, np.float64), axis, -1)
    channels = a.shape[-1]
    out = np.empty_like(a)
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels - 1, c + size // 2)
        out[..., c] = a[..., c] / (k + alpha * np.sum(a[..., lo:hi + 1] ** 2, axis=-1)) ** beta
    return np.moveaxis(out, -1, axis)


def _inputs(shape, std=100.0, seed=0):
    return (std * np.random.default_rng(seed).standard_normal(shape)).astype("float32")


def _axis(data_format):
    return -1 if data_format == "channels_last" else 1


def _layout(a_nhwc, data_format):
    """An NHWC (channels-last) array in the given layout."""
    return a_nhwc if data_format == "channels_last" else np.moveaxis(a_nhwc, -1, 1).copy()


def _to_nhwc(a, data_format):
    return a if data_format == "channels_last" else np.moveaxis(a, 1, -1)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _path_fn(function, data_format, size=5, alpha=1e-4, beta=0.75, k=2.0):
    fn = lambda x: function(x, size, alpha, beta, k, _axis(data_format))  # noqa: E731
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def backend_value_and_grad(fn, x, g):
    """fn(x) and its vector-Jacobian product with g, by this backend's own autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(g)).numpy()
    if BACKEND == "jax":
        import jax

        def value_and_vjp(x, g):
            y, vjp = jax.vjp(fn, x)
            return y, vjp(g)[0]

        # Compiled whole: eager JAX compiles every op for every new shape.
        return tuple(np.asarray(a) for a in jax.jit(value_and_vjp)(x, g))
    import torch

    x = torch.tensor(x, requires_grad=True)
    y = fn(x)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), x.grad.numpy()


def tf_lrn_value_and_grad(x_nhwc, g_nhwc):
    """The paper's LRN as TensorFlow computes it, with its gradient (NHWC)."""
    import tensorflow as tf

    x = tf.constant(x_nhwc)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4,
                                               beta=0.75)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(g_nhwc)).numpy()


def torch_lrn_value_and_grad(x_nhwc, g_nhwc):
    """The paper's LRN as torch computes it (alpha * size, NCHW), with its gradient; NHWC."""
    import torch

    x = torch.tensor(_layout(x_nhwc, "channels_first"), requires_grad=True)
    y = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(x)
    y.backward(torch.tensor(_layout(g_nhwc, "channels_first")))
    return np.moveaxis(y.detach().numpy(), 1, -1), np.moveaxis(x.grad.numpy(), 1, -1)


def _assert_grad_close(got, expected, err_msg=""):
    """Within 1e-5 of the largest gradient (elementwise relative is meaningless near 0)."""
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.max(np.abs(expected)),
                               err_msg=err_msg)


# The formula.

def test_layer_matches_float64_paper_formula_at_std_100():
    x_nhwc = _inputs((2, 3, 4, 11))
    expected = reference_lrn(x_nhwc)
    for data_format in FORMATS:
        layer = LocalResponseNormalization(data_format=data_format)
        y = _numpy(layer(_layout(x_nhwc, data_format)))
        np.testing.assert_allclose(_to_nhwc(y, data_format), expected, rtol=1e-5, atol=0,
                                   err_msg=data_format)
    # These inputs catch torch's alpha (paper alpha * size) read as the paper's.
    torch_convention = reference_lrn(x_nhwc, alpha=1e-4 / 5)
    assert np.max(np.abs(torch_convention - expected) / np.abs(expected)) > 0.3


def test_edge_channels_sum_only_channels_inside_the_range():
    """Channels 0, 1, N-2 and N-1, written out by hand from the paper's formula."""
    x = _inputs((3, 2, 2, 9), seed=2)
    y = _numpy(LocalResponseNormalization(data_format="channels_last")(x))
    a = x.astype(np.float64)
    n = a.shape[-1]

    def b(c, window):
        return a[..., c] / (2.0 + 1e-4 * sum(a[..., j] ** 2 for j in window)) ** 0.75

    expected = {0: b(0, [0, 1, 2]),
                1: b(1, [0, 1, 2, 3]),
                n - 2: b(n - 2, [n - 4, n - 3, n - 2, n - 1]),
                n - 1: b(n - 1, [n - 3, n - 2, n - 1])}
    for c, value in expected.items():
        np.testing.assert_allclose(y[..., c], value, rtol=1e-5, atol=0, err_msg=f"channel {c}")


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_implementation_matches_float64_reference(path):
    """Each layout, fewer channels than the window, other sizes and parameters, rank 3."""
    function, formats = PATHS[path]
    cases = [((2, 3, 3, 10), {}), ((2, 2, 3, 1), {}), ((2, 2, 3, 2), {}), ((2, 2, 3, 3), {}),
             ((2, 2, 3, 4), {}), ((2, 2, 3, 3), {"size": 7}), ((2, 2, 3, 6), {"size": 1}),
             ((2, 2, 3, 6), dict(size=3, alpha=2e-4, beta=0.5, k=1.0))]
    if path != "tensorflow":
        cases.append(((2, 7, 6), {}))
    for shape, params in cases:
        x_nhwc = _inputs(shape, seed=shape[-1])
        expected = reference_lrn(x_nhwc, **params)
        for data_format in formats:
            x = keras.ops.convert_to_tensor(_layout(x_nhwc, data_format))
            y = _numpy(_path_fn(function, data_format, **params)(x))
            np.testing.assert_allclose(_to_nhwc(y, data_format), expected, rtol=1e-5, atol=0,
                                       err_msg=f"{data_format} {shape} {params}")


# The reference implementations.

def test_layer_equals_tf_and_torch_lrn_forward_and_gradient():
    """Gradients through this backend's autodiff, at std 30 where the alpha term is large."""
    x_nhwc = _inputs((2, 4, 4, 12), std=30.0, seed=4)
    g_nhwc = _inputs((2, 4, 4, 12), std=1.0, seed=5)
    y_tf, dx_tf = tf_lrn_value_and_grad(x_nhwc, g_nhwc)
    y_torch, dx_torch = torch_lrn_value_and_grad(x_nhwc, g_nhwc)
    # The input-dependent part of the gradient is a large part of it here.
    assert np.max(np.abs(dx_tf - g_nhwc * y_tf / x_nhwc)) > 0.1 * np.max(np.abs(dx_tf))
    for data_format in FORMATS:
        layer = LocalResponseNormalization(data_format=data_format)
        y, dx = backend_value_and_grad(layer, _layout(x_nhwc, data_format),
                                       _layout(g_nhwc, data_format))
        y, dx = _to_nhwc(y, data_format), _to_nhwc(dx, data_format)
        for name, y_ref, dx_ref in (("tf", y_tf, dx_tf), ("torch", y_torch, dx_torch)):
            message = f"{name} {data_format}"
            np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=0, err_msg=message)
            _assert_grad_close(dx, dx_ref, err_msg=message)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_implementations_gradient_equals_tensorflows(path):
    function, formats = PATHS[path]
    for shape, seed in (((2, 4, 4, 10), 6), ((2, 3, 3, 3), 7)):
        x_nhwc = _inputs(shape, std=30.0, seed=seed)
        g_nhwc = _inputs(shape, std=1.0, seed=seed + 10)
        _, dx_tf = tf_lrn_value_and_grad(x_nhwc, g_nhwc)
        for data_format in formats:
            _, dx = backend_value_and_grad(_path_fn(function, data_format),
                                           _layout(x_nhwc, data_format),
                                           _layout(g_nhwc, data_format))
            _assert_grad_close(_to_nhwc(dx, data_format), dx_tf,
                               err_msg=f"{data_format} {shape}")


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit")
def test_jax_jit_forward_and_gradient():
    import jax

    layer = LocalResponseNormalization()
    x = _inputs((2, 3, 3, 7), std=30.0, seed=10)
    g = _inputs((2, 3, 3, 7), std=1.0, seed=11)
    y = np.asarray(jax.jit(layer)(x))
    dx = np.asarray(jax.jit(jax.grad(lambda x: jax.numpy.sum(layer(x) * g)))(x))
    y_tf, dx_tf = tf_lrn_value_and_grad(x, g)
    np.testing.assert_allclose(y, y_tf, rtol=1e-5, atol=0)
    _assert_grad_close(dx, dx_tf)


# Mixed precision.

def test_mixed_precision_computes_in_float32():
    """300^2 overflows float16: computed in float16, the output would be 0."""
    x = np.concatenate([np.full((1, 2, 2, 6), 300.0, "float32"),
                        _inputs((1, 2, 2, 6), seed=12)])
    for policy, rtol in (("mixed_float16", 2e-3), ("mixed_bfloat16", 1e-2)):
        keras.config.set_dtype_policy(policy)
        compute_dtype = keras.config.dtype_policy().compute_dtype
        y = LocalResponseNormalization()(x)
        assert keras.backend.standardize_dtype(y.dtype) == compute_dtype
        y = _numpy(keras.ops.cast(y, "float32"))
        # The layer sees the input after the policy's cast.
        x_seen = keras.ops.cast(keras.ops.cast(x, compute_dtype), "float32")
        expected = reference_lrn(_numpy(x_seen))
        assert np.all(np.abs(y[0]) > 10), policy
        np.testing.assert_allclose(y, expected, rtol=rtol, atol=0, err_msg=policy)


# Keras's own layer checks, configuration and saving.

class KerasLayerChecks(testing.TestCase):
    def test_run_layer_test_both_layouts(self):
        """build, symbolic and eager calls, serialization, a fit step, mixed precision."""
        x = _inputs((2, 3, 3, 7), std=30.0, seed=13)
        expected = reference_lrn(x, 3, 2e-4, 0.5, 1.0).astype("float32")
        self.run_layer_test(
            LocalResponseNormalization,
            init_kwargs={"size": 3, "alpha": 2e-4, "beta": 0.5, "k": 1.0,
                         "data_format": "channels_last"},
            input_data=keras.ops.convert_to_tensor(x),
            expected_output=keras.ops.convert_to_tensor(expected),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
            expected_num_losses=0,
            supports_masking=True,
        )
        self.run_layer_test(
            LocalResponseNormalization,
            init_kwargs={"data_format": "channels_first"},
            # Data rather than a shape: keras's random inputs take seconds to compile on JAX.
            input_data=keras.ops.convert_to_tensor(_inputs((2, 6, 4, 4), seed=15)),
            expected_output_shape=(2, 6, 4, 4),
            expected_output_dtype="float32",
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
            run_training_check=False,  # trained above; its gradient is tested below
        )


def test_config_has_every_argument_and_round_trips():
    layer = LocalResponseNormalization(size=3, alpha=2e-4, beta=0.5, k=1.0,
                                       data_format="channels_first", name="norm1")
    config = layer.get_config()
    assert {key: config[key] for key in ("size", "alpha", "beta", "k", "data_format")} == {
        "size": 3, "alpha": 2e-4, "beta": 0.5, "k": 1.0, "data_format": "channels_first"}
    assert keras.saving.get_registered_name(LocalResponseNormalization) == \
        "kcnn>LocalResponseNormalization"
    serialized = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is LocalResponseNormalization
    assert restored.get_config() == config
    # numpy numbers are accepted and stored as Python numbers (JSON-serializable).
    layer = LocalResponseNormalization(size=np.int64(3), alpha=np.float32(1e-4),
                                       k=np.float64(1))
    assert (type(layer.size), type(layer.alpha), type(layer.k)) == (int, float, float)
    keras.config.set_image_data_format("channels_first")
    assert LocalResponseNormalization().data_format == "channels_first"


def test_functional_model_saves_and_loads_with_identical_outputs(tmp_path):
    inputs = keras.Input((4, 4, 6))
    x = LocalResponseNormalization(size=3, alpha=2e-4, name="norm1")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    x = _inputs((2, 4, 4, 6), std=30.0, seed=14)
    expected = _numpy(model(x))
    model.save(tmp_path / "lrn.keras")
    loaded = keras.saving.load_model(tmp_path / "lrn.keras")
    assert isinstance(loaded.get_layer("norm1"), LocalResponseNormalization)
    assert loaded.get_layer("norm1").get_config() == model.get_layer("norm1").get_config()
    np.testing.assert_array_equal(_numpy(loaded(x)), expected)


# Arguments.

BAD_ARGUMENTS = [
    ("size", 0), ("size", -3), ("size", 4), ("size", 5.0), ("size", True), ("size", "5"),
    ("alpha", -1e-4), ("alpha", "1e-4"), ("alpha", None), ("alpha", float("nan")),
    ("alpha", True), ("beta", -0.75), ("beta", float("inf")), ("beta", [0.75]),
    ("k", 0), ("k", -2.0), ("k", float("nan")), ("data_format", "NHWC"),
]


def test_bad_arguments_and_inputs_raise_value_errors_naming_them():
    for name, value in BAD_ARGUMENTS:
        with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
            LocalResponseNormalization(**{name: value})
    with pytest.raises(ValueError, match="known number of channels"):
        layer = LocalResponseNormalization(data_format="channels_last")
        layer(keras.Input((None, None, None)))
