"""LiteRT export: builtin-only `.tflite` files that both interpreters run, float and quantized.

Float files equal the Keras model within 1e-4 of the output's scale in
`ai_edge_litert`'s interpreter and in `tf.lite.Interpreter`. The conversion is
TensorFlow's on every backend (JAX and torch reach it through a TensorFlow
process), so each architecture is converted on TensorFlow, and JAX and torch
export one model of their own through that process.

The MobileNetV2 and ResNet-18 of this module are trained on the digits (so that
their batch norms hold statistics of real activations and top-1 means
something), converted to float and to full int8, and must keep top-1 within one
point on held-out digits.
"""

import os

import keras
import numpy as np
import pytest

import kcnn
from kcnn import exporting
from kcnn.data import eval_pipeline, load
from kcnn.exporting import litert
from tests.export.test_saved_model_onnx import trained

BACKEND = keras.backend.backend()
# Float outputs agree within this fraction of their largest magnitude.
RTOL = 1e-4
ON_TENSORFLOW = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the conversion is TensorFlow's on every backend; JAX and torch export one "
           "model through the TensorFlow process (lenet5 here)")


def interpreters():
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    return {"ai_edge_litert": Interpreter, "tf.lite": tf.lite.Interpreter}


def relative_error(y, reference):
    return float(np.max(np.abs(y - reference)) / np.max(np.abs(reference)))


def preprocessed(model, x, y):
    """Digits through the model's own eval pipeline, as float arrays."""
    ds = eval_pipeline(load((x, y), split="all"), model.metadata["preprocessing"],
                       batch_size=512, channels=model.metadata["channels"])
    xs, ys = zip(*ds.as_numpy_iterator())
    return np.concatenate(xs), np.concatenate(ys)


def with_batch_statistics(model):
    """`model` with its batch norms' moving statistics set to those of real activations.

    One training-mode call with momentum 0 sets them to its batch's statistics,
    for a fraction of a training step's cost (which EfficientNet pays mostly
    in tracing).
    """
    # 32 examples: at 32 px the last stages are 1x1, and 8 gave channels of near-zero
    # variance whose huge folded scales made outputs of 5e3 (float32 error 5e-4).
    x = np.random.default_rng(1).normal(size=(32,) + tuple(model.inputs[0].shape[1:]))
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x.astype("float32"), training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
    initial = [n.name for n in norms if np.all(n.moving_variance.numpy() == 1.0)]
    assert norms and not initial, f"moving statistics still the initial ones: {initial}"
    return model


@pytest.fixture(scope="module")
def digits():
    return kcnn.data.load_digits(size=32)


def digits_model(build, learning_rate, digits):
    """`build()` trained on the training digits (2 epochs, Adam) with their eval preprocessing."""
    keras.utils.set_random_seed(0)
    model = build()
    (x_train, y_train), _ = digits
    x, y = preprocessed(model, x_train, y_train)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def mobilenet_v2(digits):
    return digits_model(lambda: kcnn.mobilenet_v2(input_shape=(32, 32, 1), classes=10,
                                                  classifier_activation=None), 0.01, digits)


@pytest.fixture(scope="module")
def resnet18(digits):
    return digits_model(lambda: kcnn.resnet18(input_shape=(32, 32, 1), classes=10,
                                              classifier_activation=None), 1e-3, digits)


@pytest.fixture(scope="module")
def lenet5():
    keras.utils.set_random_seed(0)
    return trained(kcnn.lenet5(classifier_activation=None))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`export(name, model, quantize=None, **options)`: the file, written once per module."""
    work = tmp_path_factory.mktemp("litert")
    files = {}

    def export(name, model, quantize=None, **options):
        key = (name, quantize)
        if key not in files:
            path = work / f"{name}-{quantize or 'float'}.tflite"
            kcnn.export(model, path, format="litert", quantize=quantize, **options)
            files[key] = path
        return files[key]

    return export


def test_lenet5_exported_from_this_backend_runs_in_both_interpreters(lenet5, exported):
    path = exported("lenet5", lenet5)
    x = np.random.default_rng(0).normal(size=(5, 28, 28, 1)).astype("float32")
    reference = lenet5.predict(x, verbose=0)
    for name, interpreter in interpreters().items():
        run = litert.open(path, interpreter=interpreter)
        # Any batch size: the file's batch dimension is dynamic.
        for batch in (x, x[:1], x):
            error = relative_error(run(batch), reference[:len(batch)])
            assert error <= RTOL, f"{name}: batch {len(batch)}: {error:.2e}"
    record = litert.read_metadata(path)
    assert record["format"] == "litert" and record["name"] == lenet5.name
    assert record["output"] == "logits"
    assert record["metadata"]["preprocessing"] == lenet5.metadata["preprocessing"]


@ON_TENSORFLOW
@pytest.mark.parametrize("name", ["alexnet_features", "resnet18", "mobilenet_v2",
                                  "efficientnet_b0"])
def test_float_export_equals_keras_in_both_interpreters(name, request, exported, digits):
    if name == "alexnet_features":
        # The paper's feature extractor (LRN, grouped convolutions); its 55M-weight
        # classifier only slows the converter down. 67 px is its smallest input;
        # it has no batch norm to train.
        model = kcnn.alexnet(variant="paper", include_top=False, input_shape=(67, 67, 3))
    elif name == "efficientnet_b0":
        model = with_batch_statistics(kcnn.efficientnet_b0(
            input_shape=(32, 32, 3), classes=10, classifier_activation=None))
    else:
        model = request.getfixturevalue(name)
    if name in ("resnet18", "mobilenet_v2"):  # trained on the digits: feed held-out digits
        x, _ = preprocessed(model, *digits[1])
        x = x[:8]
    else:
        shape = tuple(model.inputs[0].shape[1:])
        x = np.random.default_rng(0).normal(size=(4,) + shape).astype("float32")
    reference = model.predict(x, verbose=0)
    assert np.max(np.abs(reference)) > 1e-2, "outputs near zero prove nothing"
    path = exported(name, model)
    for interpreter_name, interpreter in interpreters().items():
        error = relative_error(litert.open(path, interpreter=interpreter)(x), reference)
        assert error <= RTOL, f"{interpreter_name}: {error:.2e}"


@ON_TENSORFLOW
@pytest.mark.parametrize("name, max_ratio", [
    # Each quantized output channel also stores its weights' and its int32
    # bias's scales, each a float32 scale and an int64 zero point (24 bytes a
    # channel): MobileNetV2's 17k channels add 0.4 MB to its 2.2M int8
    # weights. Measured 0.306 with this 10-class head; about 0.25 is weights.
    ("mobilenet_v2", 0.31),
    ("resnet18", 0.3),
])
def test_int8_keeps_top1_within_a_point_at_under_a_third_of_the_size(
        name, max_ratio, request, exported, digits):
    model = request.getfixturevalue(name)
    (x_train, y_train), (x_test, y_test) = digits
    x, y = preprocessed(model, x_test, y_test)
    float_path = exported(name, model)
    # 200 raw training digits calibrate, through the model's own preprocessing.
    int8_path = exported(name, model, "int8",
                         representative_data=(x_train[:200], y_train[:200]))
    float_top1 = np.mean(model.predict(x, verbose=0).argmax(-1) == y)
    int8_top1 = np.mean(litert.open(int8_path)(x).argmax(-1) == y)
    assert float_top1 >= 0.75, f"the float model is too weak to judge ({float_top1:.3f})"
    assert abs(int8_top1 - float_top1) <= 0.01, (float_top1, int8_top1)
    ratio = os.path.getsize(int8_path) / os.path.getsize(float_path)
    assert ratio <= max_ratio, ratio


@ON_TENSORFLOW
@pytest.mark.parametrize("quantize, tolerance, max_ratio", [
    # float16 rounds each weight by up to 2^-11 (4.9e-4) of itself; the
    # arithmetic stays float32. Half the bytes per weight.
    ("float16", 5e-3, 0.55),
    # int8 weights (per channel, 1/254 of each channel's range) and activations
    # quantized on the fly in the kernels; a quarter of the bytes per weight,
    # plus the per-channel scales.
    ("dynamic", 5e-2, 0.35),
])
def test_float16_and_dynamic_run_close_and_smaller(quantize, tolerance, max_ratio, lenet5,
                                                   exported):
    x = np.random.default_rng(0).normal(size=(5, 28, 28, 1)).astype("float32")
    reference = lenet5.predict(x, verbose=0)
    path = exported("lenet5", lenet5, quantize)
    for name, interpreter in interpreters().items():
        error = relative_error(litert.open(path, interpreter=interpreter)(x), reference)
        assert error <= tolerance, f"{name}: {error:.2e}"
    ratio = os.path.getsize(path) / os.path.getsize(exported("lenet5", lenet5))
    assert ratio <= max_ratio, ratio


def test_quantize_options_are_checked_before_anything_is_written(tmp_path):
    model = kcnn.lenet5()
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match="representative_data"):
        kcnn.export(model, path, format="litert", quantize="int8")
    with pytest.raises(ValueError, match="quantize applies to format='litert' only"):
        kcnn.export(model, tmp_path / "m.onnx", format="onnx", quantize="float16")
    with pytest.raises(ValueError, match="quantize must be None or one of"):
        kcnn.export(model, path, format="litert", quantize="int4")
    with pytest.raises(ValueError, match="used by quantize='int8' only"):
        kcnn.export(model, path, format="litert", quantize="dynamic",
                    representative_data="digits")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="the layer under test is written in TensorFlow ops")
def test_a_layer_without_builtin_operations_is_named(tmp_path):
    import tensorflow as tf

    class SingularValues(keras.layers.Layer):
        def call(self, x):
            return tf.linalg.svd(tf.reshape(x, (-1, 4, 4)), compute_uv=False)

    inputs = keras.Input((16,))
    outputs = SingularValues(name="singular_values")(keras.layers.Dense(16)(inputs))
    model = keras.Model(inputs, outputs, name="odd")
    with pytest.raises(ValueError, match=r"cannot express tf\.Svd in layer\(s\) "
                                         r"singular_values of model 'odd'.*select TF ops"):
        kcnn.export(model, tmp_path / "odd.tflite", format="litert")
    assert os.listdir(tmp_path) == []
