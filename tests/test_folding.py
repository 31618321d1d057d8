"""Batch norm folded into the layer before it: the same outputs, fewer layers.

Every batch norm gets random statistics (moving mean and variance, gamma,
beta) far from the initial ones, so a folding that dropped or misplaced one
changes the outputs by far more than the tolerance (1e-5 of their scale).
"""

import importlib

import keras
import numpy as np
import pytest

import kcnn
from kcnn import _keras_internal as internal
from kcnn.folding import fold_batch_norm, inference_model
from kcnn.layers import BatchNormalization as KcnnBatchNormalization
from kcnn.layers import GroupedConv2D

BACKEND = keras.backend.backend()
TOLERANCE = 1e-5
# The module (`kcnn.training.evaluate` is also the function's name there).
evaluate_module = importlib.import_module("kcnn.training.evaluate")


def randomize_batch_norms(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in internal.flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 2.0, n))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 1.0, n))
            layer.moving_mean.assign(rng.normal(0.0, 1.0, n))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, n))
    return model


def batch_norms(model):
    return sorted(layer.name for layer in internal.flatten_layers(model)
                  if isinstance(layer, keras.layers.BatchNormalization))


def outputs(model, x):
    # Compiled: on JAX one jit of the graph is faster than compiling each op of
    # an eager call.
    return keras.ops.convert_to_numpy(model.predict_on_batch(x))


def assert_close(actual, expected):
    scale = np.max(np.abs(expected))
    assert scale > 0.1  # the outputs are not near zero
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE * scale)


def images(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def every_foldable_kind():
    """One branch per kind of foldable pair, their outputs concatenated."""
    inputs = keras.Input((8, 8, 4), name="image")
    B = keras.layers.BatchNormalization
    branches = [
        B(name="bn_conv_bias")(keras.layers.Conv2D(6, 3, name="conv_bias")(inputs)),
        KcnnBatchNormalization(name="bn_conv_no_bias")(
            keras.layers.Conv2D(6, 3, use_bias=False, name="conv_no_bias")(inputs)),
        # Output channel c * 2 + j of the (3, 3, 4, 2) kernel.
        B(center=False, name="bn_depthwise")(keras.layers.DepthwiseConv2D(
            3, depth_multiplier=2, use_bias=False, name="depthwise")(inputs)),
        B(scale=False, name="bn_grouped")(GroupedConv2D(6, 3, groups=2, name="grouped")(inputs)),
        B(center=False, scale=False, name="bn_keras_grouped")(
            keras.layers.Conv2D(6, 3, groups=2, name="keras_grouped")(inputs)),
    ]
    # channels_first: the batch norm on axis 1.
    x = keras.layers.Permute((3, 1, 2), name="to_nchw")(inputs)
    # 5 filters: Keras 3.15 on TensorFlow adds a channels_first bias on the
    # wrong axis when the filters equal the output width (6 here).
    x = keras.layers.Conv2D(5, 3, data_format="channels_first", name="conv_nchw")(x)
    x = B(axis=1, name="bn_nchw")(x)
    branches.append(keras.layers.Permute((2, 3, 1), name="to_nhwc")(x))
    x = keras.layers.Concatenate(name="concat")(branches)
    x = keras.layers.Flatten(name="flatten")(x)
    dense = B(name="bn_dense")(keras.layers.Dense(5, use_bias=False, name="dense")(x))
    return randomize_batch_norms(keras.Model(inputs, dense, name="every_kind"))


def test_every_foldable_kind_folds_and_gives_the_same_outputs():
    model = every_foldable_kind()
    folded = fold_batch_norm(model)
    assert batch_norms(folded) == []
    assert len(folded.layers) == len(model.layers) - 7
    assert folded.get_layer("conv_no_bias").use_bias
    x = images((3, 8, 8, 4))
    assert_close(outputs(folded, x), outputs(model, x))


def test_batch_norms_that_must_stay_stay_and_outputs_agree():
    inputs = keras.Input((8, 8, 4), name="image")
    pre = keras.layers.BatchNormalization(name="bn_of_input")(inputs)
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(pre)
    after_add = keras.layers.BatchNormalization(name="bn_after_add")(
        keras.layers.Add(name="add")([conv, inputs]))
    # The convolution's output also feeds the add below.
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(after_add)
    shared_bn = keras.layers.BatchNormalization(name="bn_shared_input")(shared)
    x = keras.layers.Add(name="add2")([shared, shared_bn])
    relu = keras.layers.Conv2D(4, 3, activation="relu", name="conv_relu")(x)
    x = keras.layers.BatchNormalization(name="bn_after_relu")(relu)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.BatchNormalization(name="bn_after_pool")(x)
    # The one pair that folds.
    x = keras.layers.Conv2D(3, 1, name="last_conv")(x)
    x = keras.layers.BatchNormalization(name="bn_folds")(x)
    model = randomize_batch_norms(keras.Model(inputs, x))

    folded = fold_batch_norm(model)
    assert batch_norms(folded) == ["bn_after_add", "bn_after_pool", "bn_after_relu",
                                   "bn_of_input", "bn_shared_input"]
    x = images((2, 8, 8, 4))
    assert_close(outputs(folded, x), outputs(model, x))


def test_the_model_folded_is_unchanged_and_the_copy_is_independent():
    model = every_foldable_kind()
    before = [w.copy() for w in model.get_weights()]
    layers = [layer.name for layer in model.layers]
    calls = [len(internal.inbound_nodes(layer)) for layer in model.layers]
    x = images((2, 8, 8, 4))
    expected = outputs(model, x)
    folded = fold_batch_norm(model)
    assert [layer.name for layer in model.layers] == layers
    assert [len(internal.inbound_nodes(layer)) for layer in model.layers] == calls
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    # No variable is shared: changing the copy leaves the model as it was.
    for layer in folded.layers:
        for w in layer.weights:
            w.assign(np.zeros(w.shape, w.dtype))
    np.testing.assert_array_equal(outputs(model, x), expected)


def test_sequential_and_nested_functional_models_fold():
    inner_in = keras.Input((6, 6, 3))
    inner = keras.layers.BatchNormalization(name="inner_bn")(
        keras.layers.Conv2D(4, 3, name="inner_conv")(inner_in))
    backbone = keras.Model(inner_in, inner, name="backbone")
    inputs = keras.Input((6, 6, 3))
    x = backbone(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.BatchNormalization(name="outer_bn")(keras.layers.Dense(3)(x))
    nested = randomize_batch_norms(keras.Model(inputs, x))
    sequential = randomize_batch_norms(keras.Sequential([
        keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3),
        keras.layers.BatchNormalization(name="seq_bn")]), seed=2)
    x = images((2, 6, 6, 3))
    for model in (nested, sequential):
        folded = fold_batch_norm(model)
        assert batch_norms(folded) == []
        assert_close(outputs(folded, x), outputs(model, x))
    with pytest.raises(ValueError, match="not built"):
        fold_batch_norm(keras.Sequential([keras.layers.Dense(2)]))


def test_a_model_with_nothing_to_fold_is_returned_as_it_is():
    inputs = keras.Input((4,))
    x = keras.layers.BatchNormalization()(keras.layers.Dense(3, activation="relu")(inputs))
    model = keras.Model(inputs, x)
    assert fold_batch_norm(model) is model


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    return randomize_batch_norms(kcnn.mobilenet_v2(input_shape=(32, 32, 3), weights=None,
                                                   classes=10))


def test_mobilenet_v2_folds_every_batch_norm(mobilenet):
    # In MobileNetV2 every batch norm follows a convolution without activation.
    count = len(batch_norms(mobilenet))
    assert count == 52
    folded = fold_batch_norm(mobilenet)
    assert batch_norms(folded) == []
    assert len(folded.layers) == len(mobilenet.layers) - count
    assert folded.metadata == mobilenet.metadata
    assert type(folded) is type(mobilenet)
    x = images((3, 32, 32, 3))  # the batch size of the tests below
    assert_close(outputs(folded, x), outputs(mobilenet, x))


def test_predict_and_evaluate_match_the_unfolded_model_after_weights_change(
        mobilenet, monkeypatch):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6)

    def run():
        return (kcnn.predict(mobilenet, pixels, top_k=10, batch_size=3),
                kcnn.evaluate(mobilenet, (pixels, labels), batch_size=3))

    def check():
        folded_rows, folded_report = run()
        with monkeypatch.context() as m:
            m.setattr(evaluate_module, "inference_model", lambda model: model)
            rows, report = run()
        assert [[c for c, _ in r] for r in folded_rows] == [[c for c, _ in r] for r in rows]
        np.testing.assert_allclose([[p for _, p in r] for r in folded_rows],
                                   [[p for _, p in r] for r in rows], atol=1e-5)
        np.testing.assert_array_equal(folded_report["confusion_matrix"],
                                      report["confusion_matrix"])
        assert folded_report["loss"] == pytest.approx(report["loss"], abs=1e-5)

    check()
    folded = inference_model(mobilenet)
    # As if training moved the statistics between two calls: the cached folded
    # model takes the new weights.
    randomize_batch_norms(mobilenet, seed=4)
    check()
    assert inference_model(mobilenet) is folded


def graph_ops(saved_model_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    graph = loaded.signatures["serving_preprocessed"].graph.as_graph_def()
    ops = [node.op for node in graph.node]
    for function in graph.library.function:
        ops += [node.op for node in function.node_def]
    return loaded, ops


def test_saved_model_and_onnx_have_no_batch_norm_left(mobilenet, tmp_path):
    # Batch norm in a TensorFlow graph is FusedBatchNormV3 (kcnn's layer) or an
    # Rsqrt of the variance (Keras's); JAX's SavedModel is one XlaCallModule op,
    # so its variables are checked too (unfolded, 52 of each BN variable). In
    # ONNX: a BatchNormalization node or a Sqrt. MobileNetV2 has no other root.
    x = images((3, 32, 32, 3))
    expected = outputs(mobilenet, x)
    kcnn.export(mobilenet, tmp_path / "served")
    loaded, ops = graph_ops(str(tmp_path / "served"))
    assert not [op for op in ops if "BatchNorm" in op or op in ("Rsqrt", "Sqrt")]
    names = [v.name.split(":")[0].split("/")[-1] for v in loaded.variables]
    assert "moving_mean" not in names and names.count("kernel") == 53  # 52 convs, 1 dense
    assert not set(names) & {"gamma", "beta", "moving_variance"}
    y = loaded.signatures["serving_preprocessed"](inputs=x)["probabilities"].numpy()
    assert_close(y, expected)

    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    kcnn.export(mobilenet, tmp_path / "m.onnx", format="onnx")
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert not [n.op_type for n in graph.node
                if n.op_type in ("BatchNormalization", "Sqrt", "Reciprocal")]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                   providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert_close(y, expected)


def test_keras_export_keeps_the_batch_norms(tmp_path):
    model = every_foldable_kind()
    kcnn.export(model, tmp_path / "m.keras", format="keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert batch_norms(loaded) == batch_norms(model) != []
