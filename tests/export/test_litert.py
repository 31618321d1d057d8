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

Every backend also exports LeNet-5 to full int8 from raw digit arrays (JAX and
torch hand them to the TensorFlow process as an .npz), and checks `open` on
files whose input and output tensors are int8 or uint8 (a tiny TensorFlow
function converted in this process) and the interpreter's thread count.
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


# A tiny TensorFlow function (no Keras model: every backend's process converts
# it in-process) with an asymmetric input range [-1, 3] and output range
# [-1, ...), so that both ends' zero points are far from 0 in int8 and uint8.
UNITS = 8


@pytest.fixture(scope="module")
def integer_io(tmp_path_factory):
    """`(function, w, {"float" | "int8" | "uint8": path})`: one int8 model, three I/O types.

    `function` is `relu(x @ w + b) - 1` in float32; each file is its full int8
    conversion on the same calibration (so the same parameters), with float32,
    int8 or uint8 input and output tensors.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = rng.normal(size=(UNITS, 4)).astype("float32")
    b = rng.normal(size=(4,)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec([None, UNITS], tf.float32)])
    def function(x):
        return tf.nn.relu(tf.matmul(x, w) + b) - 1.0

    # The calibration holds both ends of [-1, 3] exactly.
    calibration = np.concatenate([rng.uniform(-1, 3, size=(62, UNITS)),
                                  np.full((1, UNITS), -1.0), np.full((1, UNITS), 3.0)])
    work = tmp_path_factory.mktemp("integer_io")
    paths = {}
    for name, dtype in (("float", None), ("int8", tf.int8), ("uint8", tf.uint8)):
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [function.get_concrete_function()], function)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: (
            [row[None].astype("float32")] for row in calibration)
        if dtype is not None:
            converter.inference_input_type = dtype
            converter.inference_output_type = dtype
        paths[name] = work / f"{name}.tflite"
        paths[name].write_bytes(converter.convert())
    return (lambda x: function(x).numpy()), w, paths


def test_open_reads_integer_io_files_through_their_quantization(integer_io):
    """Floats in and out, within the file's own rounding of the float function.

    Fails if `open` ignored a zero point or misused a scale (each tried: 21-43
    times the bound) or rounded differently from LiteRT's quantize op (floor:
    13 of 64 outputs differ from the float-I/O file).
    """
    function, w, paths = integer_io
    # Inside the calibrated range, so that no input is clipped.
    x = np.random.default_rng(1).uniform(-0.9, 2.9, size=(16, UNITS)).astype("float32")
    reference = function(x)
    assert np.min(reference) == -1.0 and np.max(reference) > 1.0
    float_io = litert.open(paths["float"])(x)
    for name in ("int8", "uint8"):
        runner = litert._interpreter_class()(model_path=os.fspath(paths[name]))
        source, target = runner.get_input_details()[0], runner.get_output_details()[0]
        assert source["dtype"] == target["dtype"] == np.dtype(name)
        (s_in, zero_in), (s_out, zero_out) = source["quantization"], target["quantization"]
        assert zero_in != 0 and zero_out != 0, "zero points of 0 would not test them"
        weights = [d for d in runner.get_tensor_details()
                   if tuple(d["shape"]) == w.T.shape and d["dtype"] == np.int8]
        assert len(weights) == 1, weights
        s_w = weights[0]["quantization_parameters"]["scales"]  # per output unit (or one)
        # Each output's error from the scales: the input rounded by s_in/2
        # (through |w|), the weights by s_w/2 (through |x|), their product,
        # the int32 bias by s_in*s_w/2, and two roundings to the output scale
        # (the relu's output, and the subtraction's, of the same range width).
        bound = (s_in / 2 * np.sum(np.abs(w), axis=0)
                 + np.sum(np.abs(x), axis=1, keepdims=True) * s_w / 2
                 + UNITS * s_in * s_w / 4 + s_in * s_w / 2 + s_out)
        y = litert.open(paths[name])(x)
        assert y.dtype == np.float32
        error = np.abs(y - reference)
        assert np.all(error <= bound), f"{name}: {np.max(error / bound):.2f} of the bound"
        # The same codes as the float-I/O file, whose quantize and dequantize
        # ops run inside the interpreter (an input exactly halfway between two
        # steps could round differently in numpy; random inputs are not).
        np.testing.assert_array_equal(y, float_io)


def test_open_gives_the_interpreter_every_usable_cpu_unless_told(integer_io):
    # Both interpreters default to one thread (`int(num_threads or 1)`).
    _, _, paths = integer_io
    calls = []

    class Spy(litert._interpreter_class()):
        def __init__(self, **kwargs):
            calls.append(kwargs)
            super().__init__(**kwargs)

    x = np.ones((2, UNITS), np.float32)
    expected = litert.open(paths["float"])(x)
    np.testing.assert_array_equal(litert.open(paths["float"], interpreter=Spy)(x), expected)
    usable = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count())
    assert calls.pop()["num_threads"] == usable
    np.testing.assert_array_equal(
        litert.open(paths["float"], interpreter=Spy, num_threads=3)(x), expected)
    assert calls.pop()["num_threads"] == 3
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        # The CPUs this process may use, not the machine's: one CPU, one thread.
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
        try:
            litert.open(paths["float"], interpreter=Spy)
        finally:
            os.sched_setaffinity(0, cpus)
        assert calls.pop()["num_threads"] == 1
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match=rf"num_threads must be a positive integer or "
                                             rf"None; received num_threads={bad!r}"):
            litert.open(paths["float"], interpreter=Spy, num_threads=bad)
    assert calls == []


def test_int8_export_calibrates_on_the_given_arrays_from_this_backend(lenet5, exported,
                                                                       digits):
    """From JAX and torch the arrays reach the TensorFlow process as an .npz."""
    (x_train, y_train), (x_test, y_test) = digits
    # Dim digits (raw pixels halved): their preprocessed range, [0, 0.498], is
    # none of a full-range image set's, so the input's scale shows that the
    # converter calibrated on these arrays and nothing else.
    x_calibration, y_calibration = x_train[:200] // 2, y_train[:200]
    path = exported("lenet5", lenet5, "int8",
                    representative_data=(x_calibration, y_calibration))
    calibration, _ = preprocessed(lenet5, x_calibration, y_calibration)
    assert calibration.min() == 0.0 and 0.4 < calibration.max() < 0.5

    runner = litert._interpreter_class()(model_path=os.fspath(path))
    tensors = {d["index"]: d for d in runner.get_tensor_details()}
    # The file's ops (`_get_ops_details` is the interpreters' only listing of
    # them), without the DELEGATE nodes XNNPACK appends once tensors are allocated.
    ops = [op for op in runner._get_ops_details() if op["op_name"] != "DELEGATE"]
    names = [op["op_name"] for op in ops]
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE", names
    assert runner.get_input_details()[0]["dtype"] == np.float32
    assert runner.get_output_details()[0]["dtype"] == np.float32
    layers = [op for op in ops if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert names.count("CONV_2D") == 2 and names.count("FULLY_CONNECTED") == 3, names
    for op in layers:  # int8 activations in and out, int8 weights, int32 bias
        dtypes = [tensors[i]["dtype"] for i in list(op["inputs"]) + list(op["outputs"])]
        assert dtypes == [np.int8, np.int8, np.int32, np.int8], (op["op_name"], dtypes)
    # The input's quantization: the calibration's min-max range in 255 steps,
    # its minimum (0) at -128.
    scale, zero = tensors[ops[0]["outputs"][0]]["quantization"]
    assert zero == -128
    assert scale == pytest.approx(calibration.max() / 255, rel=1e-5)

    # Held-out dim digits, inside the calibrated range. LeNet-5 rounds each of
    # its five layers' outputs to 1/255 of its calibrated range (and its tanh
    # outputs to 1/256 of [-1, 1]): measured 7.7-8.6 steps of the output's
    # scale on the three backends. (Full-range digits, which this file clips
    # at 0.498, are 80 steps off.)
    x, _ = preprocessed(lenet5, x_test[:64] // 2, y_test[:64])
    reference = lenet5.predict(x, verbose=0)
    output_scale = tensors[ops[-1]["inputs"][0]]["quantization"][0]
    steps = np.max(np.abs(litert.open(path)(x) - reference)) / output_scale
    assert steps <= 16, f"{steps:.1f} steps of {output_scale:.2e}"
