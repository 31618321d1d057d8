"""kcnn's BatchNormalization is Keras's, with a backend's fused kernel where it pays.

Every test compares with `keras.layers.BatchNormalization` given the same
weights and inputs (values, gradients w.r.t. the input, gamma and beta, and
the moving statistics after a training call), channels-last and
channels-first, on every backend; the dispatch tests prove that TensorFlow
and torch really run their fused kernels.
"""

import keras
import numpy as np
import pytest
from keras.src import testing

import kcnn
from kcnn.layers import BatchNormalization

BACKEND = keras.backend.backend()
FORMATS = {"channels_last": (-1, (4, 5, 7, 6)), "channels_first": (1, (4, 6, 5, 7))}


def _pair(channels=6, epsilon=1e-5, data_format="channels_last", **kwargs):
    """kcnn's and Keras's layer with the same non-trivial weights, and an input."""
    rng = np.random.default_rng(0)
    axis, shape = FORMATS[data_format]
    shape = tuple(channels if d == 6 else d for d in shape)
    ours = BatchNormalization(axis=axis, epsilon=epsilon, momentum=0.9, **kwargs)
    theirs = keras.layers.BatchNormalization(axis=axis, epsilon=epsilon, momentum=0.9,
                                             **kwargs)
    for layer in (ours, theirs):
        layer.build(shape)
    values = {"gamma": rng.uniform(0.5, 2.0, channels), "beta": rng.normal(0, 1, channels),
              "moving_mean": rng.normal(0, 3, channels),
              "moving_variance": rng.uniform(0.1, 9.0, channels)}
    for layer in (ours, theirs):
        for name, value in values.items():
            if getattr(layer, name, None) is not None:  # no gamma without scale, ...
                getattr(layer, name).assign(value.astype("float32"))
    x = rng.normal(1, 4, shape).astype("float32")
    return ours, theirs, x


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _assert_close(got, expected, err_msg=""):
    """Within 1e-5 relative to the tensor's largest value (elementwise relative is
    meaningless near 0)."""
    np.testing.assert_allclose(got, expected, rtol=1e-5,
                               atol=1e-5 * np.max(np.abs(expected)), err_msg=err_msg)


def _forward_backward(layer, x, upstream, training):
    """Outputs, gradients of sum(outputs * upstream) w.r.t. x and the trainable
    weights, and the weights after the call, by the backend's own autodiff (the
    path of its trainer: stateful on TensorFlow and torch, stateless on JAX)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x] + layer.trainable_variables)
        return _np(y), [_np(g) for g in grads], layer.get_weights()
    if BACKEND == "jax":
        import jax

        def loss(x, trainable, non_trainable):
            y, non_trainable = layer.stateless_call(trainable, non_trainable, x,
                                                    training=training)
            return jax.numpy.sum(y * upstream), (y, non_trainable)

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]
        (_, (y, non_trainable)), (dx, dweights) = jax.jit(
            jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(x, trainable, non_trainable)
        for variable, value in zip(layer.non_trainable_variables, non_trainable):
            variable.assign(value)
        return _np(y), [_np(dx)] + [_np(g) for g in dweights], layer.get_weights()
    import torch

    x = torch.tensor(x, requires_grad=True)
    y = layer(x, training=training)
    (y * torch.tensor(upstream)).sum().backward()
    grads = [x.grad] + [v.value.grad for v in layer.trainable_variables]
    return _np(y.detach()), [_np(g) for g in grads], layer.get_weights()


class BatchNormalizationLayerTest(testing.TestCase):
    def test_keras_layer_checks(self):
        self.run_layer_test(
            BatchNormalization, init_kwargs={"epsilon": 1e-5, "momentum": 0.9},
            input_shape=(2, 4, 4, 3), expected_output_shape=(2, 4, 4, 3),
            expected_num_trainable_weights=2, expected_num_non_trainable_weights=2,
            supports_masking=True)


@pytest.mark.parametrize("data_format", list(FORMATS))
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_values_gradients_and_moving_statistics_equal_keras(data_format, training):
    ours, theirs, x = _pair(data_format=data_format)
    upstream = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    y, grads, weights = _forward_backward(ours, x, upstream, training)
    y_ref, grads_ref, weights_ref = _forward_backward(theirs, x, upstream, training)
    _assert_close(y, y_ref, "outputs")
    for name, got, expected in zip(["x", "gamma", "beta"], grads, grads_ref):
        _assert_close(got, expected, f"gradient w.r.t. {name}")
    for name, got, expected in zip(["gamma", "beta", "moving mean", "moving variance"],
                                   weights, weights_ref):
        _assert_close(got, expected, name)
    if training:  # the moving statistics did move
        assert not np.allclose(weights[3], _pair(data_format=data_format)[0].get_weights()[3])


def test_frozen_layer_in_training_uses_the_moving_statistics_as_keras():
    ours, theirs, x = _pair()
    ours.trainable = theirs.trainable = False
    _assert_close(_np(ours(x, training=True)), _np(theirs(x, training=True)))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):  # nothing updated
        np.testing.assert_array_equal(a, b)
    _assert_close(_np(ours(x)), _np(theirs(x)))  # training=None is inference


@pytest.mark.parametrize("kwargs", [{"center": False}, {"scale": False},
                                    {"center": False, "scale": False}])
def test_without_center_or_scale_equals_keras(kwargs):
    ours, theirs, x = _pair(**kwargs)
    for training in (True, False):
        _assert_close(_np(ours(x, training=training)), _np(theirs(x, training=training)))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        _assert_close(a, b)


def test_masks_renorm_and_one_value_per_channel_take_keras_path_and_equal_it():
    ours, theirs, x = _pair()
    mask = np.random.default_rng(2).uniform(size=x.shape[:-1]) > 0.3
    _assert_close(_np(ours(x, training=True, mask=mask)),
                  _np(theirs(x, training=True, mask=mask)))
    ours, theirs, x = _pair(renorm=True)
    _assert_close(_np(ours(x, training=True)), _np(theirs(x, training=True)))
    ours, theirs, x = _pair()
    x = x[:1, :1, :1]  # torch's kernel refuses a batch of one value per channel
    _assert_close(_np(ours(x, training=True)), _np(theirs(x, training=True)))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        _assert_close(a, b)


def test_stateless_call_equals_keras_and_leaves_the_variables():
    ours, theirs, x = _pair()
    before = ours.get_weights()
    results = []
    for layer in (ours, theirs):
        y, non_trainable = layer.stateless_call(
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables], x, training=True)
        results.append([_np(y)] + [_np(v) for v in non_trainable])
    for got, expected in zip(*results):
        _assert_close(got, expected)
    for a, b in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_equals_keras(policy):
    keras.config.set_dtype_policy(policy)  # the conftest fixture restores the policy
    ours, theirs, x = _pair()
    for training in (True, False):
        y, y_ref = ours(x, training=training), theirs(x, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == ours.compute_dtype
        np.testing.assert_allclose(_np(y).astype("float32"), _np(y_ref).astype("float32"),
                                   rtol=1e-2, atol=1e-2)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):  # float32, computed alike
        _assert_close(a, b)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_tensorflow_inference_runs_the_fused_kernel():
    import tensorflow as tf

    ours, theirs, x = _pair()
    spec = tf.TensorSpec(x.shape, tf.float32)

    def op_types(layer, training):
        graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(
            spec).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(ours, False)
    assert "FusedBatchNormV3" not in op_types(ours, True)  # training: Keras's own path
    assert "FusedBatchNormV3" not in op_types(theirs, False)


@pytest.mark.skipif(BACKEND != "torch", reason="the fused kernel is torch's")
@pytest.mark.parametrize("data_format", list(FORMATS))
def test_torch_training_and_inference_run_the_fused_kernel(data_format, monkeypatch):
    """Training runs torch's batch_norm, inference one addcmul (`_torch_inference`)."""
    import torch

    calls = []
    fused, addcmul = torch.nn.functional.batch_norm, torch.addcmul

    def spy(*args, **kwargs):
        calls.append(kwargs["training"])
        return fused(*args, **kwargs)

    def spy_addcmul(*args, **kwargs):
        calls.append("addcmul")
        return addcmul(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "batch_norm", spy)
    monkeypatch.setattr(torch, "addcmul", spy_addcmul)
    ours, theirs, x = _pair(data_format=data_format)
    y = ours(torch.tensor(x, requires_grad=True), training=True)
    node = y.grad_fn if data_format == "channels_first" else y.grad_fn.next_functions[0][0]
    assert "BatchNormBackward" in type(node).__name__
    ours(x, training=False)
    assert calls == [True, "addcmul"]
    theirs(x, training=True)
    theirs(x, training=False)
    assert calls == [True, "addcmul"]  # Keras's layer does neither: the spies can tell


def test_builders_use_it_and_a_saved_model_keeps_it(tmp_path):
    model = kcnn.models.resnet18(input_shape=(32, 32, 3), classes=3)
    assert isinstance(model.get_layer("bn1"), BatchNormalization)
    path = str(tmp_path / "r.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.get_layer("layer1_0_bn1")) is BatchNormalization
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(_np(restored(x)), _np(model(x)), rtol=1e-6, atol=1e-6)
