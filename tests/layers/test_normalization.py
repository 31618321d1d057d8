"""kcnn's BatchNormalization is Keras's, with TensorFlow's fused kernel in inference."""

import keras
import numpy as np
import pytest
from keras.src import testing

import kcnn
from kcnn.layers import BatchNormalization

BACKEND = keras.backend.backend()


def _pair(channels=6, epsilon=1e-5):
    """kcnn's and Keras's layer with the same non-trivial weights."""
    rng = np.random.default_rng(0)
    ours = BatchNormalization(epsilon=epsilon, momentum=0.9)
    theirs = keras.layers.BatchNormalization(epsilon=epsilon, momentum=0.9)
    shape = (2, 5, 7, channels)
    for layer in (ours, theirs):
        layer.build(shape)
    weights = [rng.uniform(0.5, 2.0, channels).astype("float32"),   # gamma
               rng.normal(0, 1, channels).astype("float32"),        # beta
               rng.normal(0, 3, channels).astype("float32"),        # moving mean
               rng.uniform(0.1, 9.0, channels).astype("float32")]   # moving variance
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.normal(1, 4, shape).astype("float32")
    return ours, theirs, x


def _np(x):
    return keras.ops.convert_to_numpy(x)


class BatchNormalizationLayerTest(testing.TestCase):
    def test_keras_layer_checks(self):
        self.run_layer_test(
            BatchNormalization, init_kwargs={"epsilon": 1e-5, "momentum": 0.9},
            input_shape=(2, 4, 4, 3), expected_output_shape=(2, 4, 4, 3),
            expected_num_trainable_weights=2, expected_num_non_trainable_weights=2,
            supports_masking=True)


def test_inference_equals_keras_batch_normalization():
    ours, theirs, x = _pair()
    expected = _np(theirs(x, training=False))
    np.testing.assert_allclose(_np(ours(x, training=False)), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(ours(x)), expected, rtol=1e-6, atol=1e-6)


def test_training_and_frozen_training_equal_keras():
    ours, theirs, x = _pair()
    np.testing.assert_allclose(_np(ours(x, training=True)), _np(theirs(x, training=True)),
                               rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):  # moving statistics updated alike
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    ours.trainable = theirs.trainable = False  # frozen: the moving statistics in training too
    np.testing.assert_allclose(_np(ours(x, training=True)), _np(theirs(x, training=True)),
                               rtol=1e-6, atol=1e-6)


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


def test_mixed_precision_uses_keras_path():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if BACKEND != "jax" else "mixed_bfloat16")
    try:
        layer = BatchNormalization()
        x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
        y = layer(x, training=False)
        assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
    finally:
        keras.config.set_dtype_policy(previous)


def test_builders_use_it_and_a_saved_model_keeps_it(tmp_path):
    model = kcnn.models.resnet18(input_shape=(32, 32, 3), classes=3)
    assert isinstance(model.get_layer("bn1"), BatchNormalization)
    path = str(tmp_path / "r.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.get_layer("layer1_0_bn1")) is BatchNormalization
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(_np(restored(x)), _np(model(x)), rtol=1e-6, atol=1e-6)
