"""LiteRT (TFLite): a `.tflite` file of builtin operations, float or quantized.

Written by TensorFlow's `tf.lite.TFLiteConverter` from a SavedModel of the
(batch-norm folded) model, the path Keras's own `format="litert"` takes, with
one difference: Keras also enables `SELECT_TF_OPS`, whose kernels live in
TensorFlow, so its files may need the Flex delegate that the standalone
interpreter (`ai-edge-litert`, phones) does not have. kcnn converts with
`TFLITE_BUILTINS` only (`TFLITE_BUILTINS_INT8` for full int8), so every file it
writes runs in `ai_edge_litert.interpreter.Interpreter` and in
`tf.lite.Interpreter`; a layer that builtin operations cannot express is
refused, by name.

The batch dimension stays dynamic (the file's `shape_signature` holds -1; its
default shape is batch 1): `open` resizes the input to each batch it is given.

quantize:
    None       float32 weights and activations.
    "float16"  float16 weights, dequantized to float32 at load; about half the
               size, float32 arithmetic.
    "dynamic"  int8 weights, float activations (dynamic-range quantization):
               about a quarter of the size, no calibration data.
    "int8"     int8 weights and activations, calibrated on
               `representative_data`: `kcnn.data.load(data, split="train")`,
               shuffled with a fixed seed, through the model's own eval
               pipeline (`kcnn.data.eval_pipeline` with the model's
               preprocessing, as `kcnn.evaluate` feeds it), first
               `CALIBRATION_EXAMPLES` images.
               The file's input and output stay FLOAT32: the converter puts a
               quantize op after the input and a dequantize op before the
               output, so the same preprocessed float batch feeds every kcnn
               LiteRT file and the output is the model's own (probabilities or
               logits), not int8 codes whose scale the caller must look up. A
               fully integer pipeline (camera uint8 straight in) can strip those
               two ops with the LiteRT tools; `open` also reads such files,
               quantizing the input and dequantizing the output with the
               file's own parameters.

kcnn's metadata record is in `<path>.json` beside the file (a `.tflite` has a
metadata buffer, but the interpreters do not expose it): `read_metadata`.
"""

import builtins
import os
import re
import tempfile

import numpy as np

from kcnn import checks
from kcnn.exporting import metadata as metadata_lib

# Images that calibrate full int8 quantization ("a few hundred").
CALIBRATION_EXAMPLES = 300


def write(model, out, *, quantize=None, representative_data=None, verbose=False):
    """Write `model` (folded, on TensorFlow) to the `.tflite` file `out`, and its sidecar."""
    import tensorflow as tf

    from keras import export as keras_export

    spec = tf.TensorSpec([None] + list(model.inputs[0].shape[1:]), tf.float32,
                         name=model.inputs[0].name)
    with tempfile.TemporaryDirectory() as saved:
        archive = keras_export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False),
                             input_signature=[spec])
        archive.write_out(saved, verbose=verbose)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantize == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = _representative_dataset(
                model, representative_data)
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # the converter's own error types vary by version
            raise _unsupported(model, e) from e
    with builtins.open(out, "wb") as f:  # `open` is this module's reader
        f.write(flatbuffer)
    metadata_lib.write_json(model, metadata_lib.sidecar(out), "litert")


def _representative_dataset(model, data):
    """A generator function of calibration batches (one image each) for the converter."""
    import dataclasses

    from kcnn.data import Source, eval_pipeline, load

    source = data if isinstance(data, Source) else load(data, split="train")
    meta = getattr(model, "metadata", None) or {}
    if "preprocessing" not in meta:
        raise ValueError(f"quantize='int8' calibrates through the model's preprocessing, "
                         f"and model {model.name!r} has no kcnn metadata record; build it "
                         f"with a kcnn builder or train it with kcnn.train.")
    # Records (paths, array rows) are small: shuffle them all, so that a folder
    # sorted by class calibrates on every class, not the first few.
    source = dataclasses.replace(
        source, records=source.records.shuffle(source.shuffle_buffer, seed=0))
    batches = eval_pipeline(source, meta["preprocessing"], batch_size=1,
                            channels=meta.get("channels"))
    batches = batches.take(CALIBRATION_EXAMPLES)

    def generate():
        count = 0
        for x, _ in batches.as_numpy_iterator():
            count += 1
            yield [x.astype(np.float32)]
        if count == 0:
            raise ValueError("representative_data holds no images to calibrate on.")

    return generate


def _unsupported(model, error):
    """The converter's failure as a ValueError naming the layers it could not express."""
    text = str(error)
    # "'tf.Svd' op is neither a custom op nor a flex op", at a location such as
    # "odd_1/odd_layer_1/Svd@__inference_...": the graph's name scopes are the
    # layers' names, with the "_1" Keras appends to each call's scope.
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither", text)))
    if not ops:
        return ValueError(f"LiteRT conversion of model {model.name!r} failed: {text}")
    names = {layer.name for layer in model.layers}
    layers = []
    for scope in re.findall(r'"(\S+?)@__inference', text):
        for part in scope.split("/")[:-1]:
            for name in (part, re.sub(r"_\d+$", "", part)):
                if name in names and name not in layers:
                    layers.append(name)
    where = f" in layer(s) {', '.join(layers)}" if layers else ""
    return ValueError(
        f"LiteRT's builtin operations cannot express {', '.join(ops)}{where} of model "
        f"{model.name!r}. kcnn does not enable select TF ops on purpose: the standalone "
        f"LiteRT interpreter (ai-edge-litert) cannot run them. Export this model as a "
        f"SavedModel, ONNX or OpenVINO instead. The converter said:\n{text[-2000:]}")


def usable_cpus():
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


def open(path, *, interpreter=None, num_threads=None):
    """A function of a preprocessed float32 batch to the model's output (numpy).

    Runs in `ai_edge_litert`'s interpreter (the `kcnn[litert]` extra), else
    TensorFlow's `tf.lite.Interpreter`; `interpreter` picks a class explicitly
    (called with `model_path=` and `num_threads=`).
    Any batch size: the input is resized when the batch changes. A file with
    integer input or output is fed and read through its quantization
    parameters, so the function always takes and returns floats.

    `num_threads`: the interpreter's CPU threads; None (the default) uses every
    CPU this process may run on (`usable_cpus()`). kcnn differs from both
    interpreters here: `ai_edge_litert` 2.3.0 and `tf.lite.Interpreter` (TF
    2.21) take `num_threads=None` and pass `int(num_threads or 1)` on, i.e.
    ONE thread, which leaves a server's other cores idle, while onnxruntime,
    OpenVINO, TensorFlow and torch use every core by default.
    """
    num_threads = checks.positive_int("num_threads", num_threads, optional=True)
    cls = interpreter or _interpreter_class()
    runner = cls(model_path=os.fspath(path), num_threads=num_threads or usable_cpus())
    runner.allocate_tensors()
    state = {"shape": None}

    def run(x):
        x = np.asarray(x, np.float32)
        source = runner.get_input_details()[0]
        if state["shape"] != x.shape:
            runner.resize_tensor_input(source["index"], x.shape, strict=False)
            runner.allocate_tensors()
            state["shape"] = x.shape
            source = runner.get_input_details()[0]
        runner.set_tensor(source["index"], _quantize(x, source))
        target = runner.get_output_details()[0]
        runner.invoke()
        return _dequantize(runner.get_tensor(target["index"]), target)

    return run


def _quantize(x, detail):
    if not np.issubdtype(detail["dtype"], np.integer):
        return x.astype(detail["dtype"])
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    if not np.issubdtype(detail["dtype"], np.integer):
        return np.asarray(y, np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def read_metadata(path):
    """kcnn's metadata record of the `.tflite` file at `path` (from `<path>.json`), or None."""
    return metadata_lib.read_json(metadata_lib.sidecar(path))
