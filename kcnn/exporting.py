"""Ship a model: a SavedModel that serves raw images, ONNX, or a `.keras` file.

    kcnn.export(model, "served/alexnet")                     # TensorFlow SavedModel
    kcnn.export(model, "alexnet.onnx", format="onnx")
    kcnn.export("model.keras", "served/alexnet")             # from a saved file

The SavedModel needs neither kcnn nor Keras to run: `tf.saved_model.load(path)`
or TensorFlow Serving. Its signatures (names are stable):

- `serving_default`: `images`, uint8 of shape (batch, height, width, channels),
  one size within a call, any size and 1 or 3 channels (2 and 4: the alpha
  is dropped) from call to call. The model's own preprocessing runs inside,
  from its metadata record, as `kcnn.predict` does it: resize, centre crop,
  grayscale/RGB conversion, normalisation, channels-first when the model is.
- `serving_encoded`: `image_bytes`, a batch of encoded JPEG/PNG/GIF/BMP
  files (tf.string), as REST clients send them; images may differ in size.
- `serving_preprocessed`: `inputs`, float32 batches exactly as the model
  takes them (already preprocessed).

All three return `probabilities` (batch, classes), `top_k_indices` (int32),
`top_k_probabilities` and `top_k_names` (the class names as strings), k =
min(top_k, classes). A model without a classifier (`include_top=False`)
returns `features` instead. The SavedModel also keeps Keras's own `serve`
endpoint (float input `args_0`, output `output_0`), which
`keras.layers.TFSMLayer` calls.

Every backend exports: TensorFlow and JAX directly; under torch (SavedModel)
and JAX (ONNX, whose converter fails on max pooling) the model goes through
its `.keras` file into a TensorFlow process, automatically. An export never
replaces what is at `path` unless `overwrite=True`, and a failed export leaves
nothing behind: it is written to a temporary sibling and renamed into place.

SavedModel and ONNX run the model with its batch norms folded into the
convolutions before them (`kcnn.fold_batch_norm`; in the TensorFlow process
where the export goes through one): no batch-norm op is left in the graph. The
`.keras` format keeps them, as the `.keras` file saved on the way does.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np

from kcnn import checks, loading
from kcnn.folding import fold_batch_norm

FORMATS = ("saved_model", "onnx", "keras")


def export(model, path, format="saved_model", *, overwrite=False, top_k=5, verbose=False):
    """Export `model` (a Keras model or a `.keras` file path) to `path`.

    Args:
        model: a kcnn model (any builder, trained or not, or loaded from a
            `.keras` file) or the path of a `.keras` file.
        path: the SavedModel directory, the `.onnx` file, or the `.keras` file.
        format: "saved_model" (TensorFlow SavedModel with the signatures in
            this module's docstring), "onnx" (the model's float input, checked
            to load in onnxruntime when it is installed) or "keras".
        overwrite: replace an existing non-empty `path`; otherwise refuse.
        top_k: how many top classes the SavedModel's signatures return.

    Returns:
        `path`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; received format={format!r}.")
    checks.positive_int("top_k", top_k)
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file or directory path (str or os.PathLike); "
                         f"received path={path!r}.")
    path = os.path.abspath(os.fspath(path))
    if format == "keras" and not path.endswith(".keras"):
        raise ValueError(f"path must end in '.keras' for format='keras'; received {path!r}.")
    _check_target(path, overwrite)
    model_file = None
    if isinstance(model, (str, os.PathLike)):
        model_file = loading.check_keras_file(model)
    elif not isinstance(model, keras.Model):
        raise ValueError(f"model must be a Keras model or the path of a .keras file; "
                         f"received {type(model).__name__}.")

    backend = keras.backend.backend()
    in_process = (format == "keras"
                  or (format == "saved_model" and backend in ("tensorflow", "jax"))
                  or (format == "onnx" and backend == "tensorflow"))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        out = os.path.join(work, os.path.basename(path))
        if in_process:
            if model_file is not None:
                model = keras.saving.load_model(model_file)
            if format != "keras":
                model = fold_batch_norm(model)
            _WRITERS[format](model, out, top_k=top_k, verbose=verbose)
        else:
            if model_file is None:
                model_file = os.path.join(work, "model.keras")
                model.save(model_file)
            _export_in_tensorflow(model_file, out, format, top_k)
        _replace(out, path, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _check_target(path, overwrite):
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be True or False; received overwrite={overwrite!r}.")
    if overwrite or not os.path.exists(path):
        return
    if os.path.isdir(path) and not os.listdir(path):
        return
    raise ValueError(f"path={path!r} exists and is not empty; pass overwrite=True to "
                     f"replace it (nothing was written).")


def _replace(out, path, work):
    """Move the finished export to `path`; an old one goes only once it is replaced."""
    old = None
    if os.path.lexists(path):
        old = os.path.join(work, "old")
        os.replace(path, old)
    try:
        os.replace(out, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise


def _export_in_tensorflow(model_file, out, format, top_k):
    """Run `kcnn export` on the TensorFlow backend in a child process."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    command = [sys.executable, "-m", "kcnn", "export", model_file, out,
               "--format", format, "--top-k", str(top_k)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"exporting {model_file} to {format} in a TensorFlow process "
                           f"failed (exit code {result.returncode}):\n{tail}")


# --- SavedModel --------------------------------------------------------------

def _write_saved_model(model, out, *, top_k, verbose):
    import tensorflow as tf

    from kcnn.data import augment as ops
    from kcnn.data.pipeline import check_preprocessing, eval_image
    from kcnn.models._common import ends_in_softmax

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"export serves models with one image input and one output; "
                         f"{model.name!r} has {len(model.inputs)} inputs and "
                         f"{len(model.outputs)} outputs.")
    metadata = getattr(model, "metadata", None) or {}
    if "preprocessing" not in metadata:
        raise ValueError(f"model {model.name!r} has no kcnn metadata record (the "
                         "preprocessing the serving signatures need); build it with a "
                         "kcnn builder or train it with kcnn.train.")
    record, channels = check_preprocessing(metadata["preprocessing"],
                                           metadata.get("channels"))
    height, width = record["crop"]
    channels_first = _data_format(model) == "channels_first"
    input_shape = tuple(model.inputs[0].shape)
    classifier = _is_classifier(model, metadata)
    names = _class_names(model, metadata) if classifier else None
    softmax = classifier and ends_in_softmax(model)

    archive = keras.export.ExportArchive()
    model_fn = archive.track_and_add_endpoint(
        "serve", model,
        input_signature=[keras.InputSpec(shape=input_shape, dtype="float32")])

    def outputs(x):
        y = tf.cast(model_fn(x), tf.float32)
        if not classifier:
            return {"features": y}
        probabilities = y if softmax else tf.nn.softmax(y, axis=-1)
        top = tf.math.top_k(probabilities, k=min(top_k, len(names)))
        return {"probabilities": probabilities,
                "top_k_probabilities": top.values,
                "top_k_indices": top.indices,
                "top_k_names": tf.gather(tf.constant(names), top.indices)}

    def prepare(image):
        """One uint8 (h, w, c) image to the model's crop, as kcnn.predict does."""
        return eval_image(image, record, channels)

    crop_spec = tf.TensorSpec([height, width, channels], tf.uint8)

    def finish(crops):
        x = ops.normalize(crops, record)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        return outputs(x)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8,
                                                name="images")])
    def serving_default(images):
        return finish(tf.map_fn(prepare, images, fn_output_signature=crop_spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_encoded(image_bytes):
        def decode(data):
            image = tf.io.decode_image(data, channels=0, expand_animations=False)
            return prepare(image)

        return finish(tf.map_fn(decode, image_bytes, fn_output_signature=crop_spec))

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32, name="inputs")])
    def serving_preprocessed(inputs):
        return outputs(inputs)

    archive.add_endpoint("serving_default", serving_default)
    archive.add_endpoint("serving_encoded", serving_encoded)
    archive.add_endpoint("serving_preprocessed", serving_preprocessed)
    archive.write_out(out, verbose=verbose)


def _data_format(model):
    """The layers' own data format: a model loaded from a file keeps the one it
    was built with, whatever `keras.config.image_data_format()` says now."""
    for layer in model.layers:
        data_format = getattr(layer, "data_format", None)
        if data_format in ("channels_first", "channels_last"):
            return data_format
    return keras.config.image_data_format()


def _is_classifier(model, metadata):
    shape = model.outputs[0].shape
    names = metadata.get("class_names") or []
    return len(shape) == 2 and shape[-1] is not None and (
        not names or len(names) == shape[-1])


def _class_names(model, metadata):
    n = int(model.outputs[0].shape[-1])
    names = metadata.get("class_names")
    return [str(c) for c in names] if names and len(names) == n else [str(i) for i in range(n)]


# --- ONNX and .keras ---------------------------------------------------------

def _write_onnx(model, out, *, top_k, verbose):
    del top_k
    # Keras's ONNX export needs the model called once (its input signature).
    shape = [1 if d is None else d for d in model.inputs[0].shape]
    model(np.zeros(shape, "float32"))
    model.export(out, format="onnx", verbose=verbose)
    _check_onnx(out)


def _check_onnx(out):
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])


def _write_keras(model, out, *, top_k, verbose):
    del top_k, verbose
    model.save(out)


_WRITERS = {"saved_model": _write_saved_model, "onnx": _write_onnx, "keras": _write_keras}
