"""Evaluation and prediction with the preprocessing the model was trained with.

Both read `model.metadata` (preprocessing, class names, channels), so raw uint8
images, image files and data sources get exactly the training-time treatment
(centre crop instead of random crop) and results come back as class names.

The model runs compiled: Keras's predict function (`jax.jit` on JAX, a
`tf.function` on TensorFlow, `torch.no_grad` on torch, where Keras compiles only
with `jit_compile=True`), one call per batch, not an eager call of the model.
`benchmarks/eval_speed.py` measures the difference.

Both run the model with its batch norms folded into the convolutions before
them (`kcnn.folding`): the same predictions to float32 rounding, one pass over
the activations fewer. The folded model is built once per model and its
weights are copied in afresh on every call, so a model trained between calls
predicts with its new weights.

Both also take what `kcnn.export` wrote (a SavedModel folder, .onnx, .tflite,
.xml, .pt2, or the `ExportedModel` that `kcnn.load_model` opened from one): it
runs in its own runtime with the preprocessing and class names its kcnn
metadata record carries. Batches are laid out as the model's own layers take
them (channels-first or last), whatever `keras.config.image_data_format()` says.
"""

import contextlib
import os
import warnings

import keras
import numpy as np

from kcnn import checks
from kcnn.data import Source, eval_pipeline, load
from kcnn.data.sources import unreadable_images
from kcnn.exporting import metadata as export_metadata
from kcnn.folding import inference_model
from kcnn.loading import MissingFileError, as_model
from kcnn.models._common import ends_in_softmax


def evaluate(model, data, *, split=None, batch_size=64, ten_crop=False):
    """Loss, top-1 and top-5 accuracy, a per-class report and the confusion matrix.

    Args:
        model: a Keras model with kcnn metadata (any kcnn builder, or one
            kcnn trained), the path of such a model's `.keras` file, or an
            export of one (its path, or `kcnn.load_model`'s `ExportedModel`).
        data: a `kcnn.data.Source`, or anything `kcnn.data.load` takes (raw
            uint8 `(x, y)` arrays included), read at `split` (default: "test";
            all of it for arrays).
        ten_crop: average the predictions over the paper's 10 crops.

    Returns:
        dict with `loss`, `top1`, `top5` (floats), `per_class` (class name ->
        precision, recall, f1, support) and `confusion_matrix` (rows: true
        class, columns: predicted).
    """
    model = as_model(model, exported=True)
    checks.positive_int("batch_size", batch_size)
    if not isinstance(ten_crop, bool):
        raise ValueError(f"ten_crop must be True or False; received ten_crop={ten_crop!r}.")
    if split is None:
        split = "all" if isinstance(data, (tuple, list)) else "test"
    source = data if isinstance(data, Source) else load(data, split=split)
    with _layout_of(model):
        ds = eval_pipeline(source, _preprocessing(model), batch_size=batch_size,
                           ten_crop=ten_crop, channels=model.metadata.get("channels"))
    probs, labels = _predict_batches(_runner(model), ds, ten_crop)
    n = probs.shape[1]
    names = _class_names(model, n)
    eps = 1e-12
    loss = float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + eps)))
    ranked = np.argsort(-probs, axis=1)
    top1 = float(np.mean(ranked[:, 0] == labels))
    top5 = float(np.mean((ranked[:, :min(5, n)] == labels[:, None]).any(axis=1)))
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (labels, ranked[:, 0]), 1)
    return {"loss": loss, "top1": top1, "top5": top5,
            "per_class": _per_class(matrix, names), "confusion_matrix": matrix}


def confusion(model, dataset):
    """The confusion matrix of `model` on batches of (images, labels)."""
    probs, labels = _predict_batches(model, dataset, ten_crop=False)
    n = probs.shape[1]
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (labels, probs.argmax(axis=1)), 1)
    return matrix


def predict(model, images, *, top_k=5, batch_size=32):
    """Top-k class names with probabilities for image files or raw uint8 arrays.

    Args:
        model: a Keras model with kcnn metadata, the path of its `.keras`
            file, or an export of one (as for `evaluate`).
        images: a path, a list of paths (JPEG, PNG, BMP, GIF), or a uint8 array
            of shape (N, H, W, C) or (H, W, C). A missing file, or one that is
            not an image, raises an error naming every such file.

    Returns:
        One list per image of `(class_name, probability)`, most likely first.
    """
    import tensorflow as tf

    model = as_model(model, exported=True)
    checks.positive_int("top_k", top_k)
    checks.positive_int("batch_size", batch_size)
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if not isinstance(images, (np.ndarray, list, tuple)) or len(images) == 0:
        raise ValueError(f"images must be a path, a non-empty list of paths or a uint8 "
                         f"array; received images={images!r}.")
    if isinstance(images, np.ndarray):
        array = images[None] if images.ndim == 3 else images
        if array.ndim != 4 or array.dtype != np.uint8:
            raise ValueError("images must be uint8 arrays of shape (N, H, W, C) or "
                             f"(H, W, C); received dtype {array.dtype}, shape {array.shape}.")
        ds = tf.data.Dataset.from_tensor_slices((array, np.zeros(len(array), np.int64)))
    else:
        if not all(isinstance(p, (str, os.PathLike)) for p in images):
            raise ValueError(f"images must be paths or one uint8 array; received a list "
                             f"holding {sorted({type(p).__name__ for p in images})}.")
        paths = [os.fspath(p) for p in images]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise MissingFileError(f"images: no such file(s): {', '.join(missing)}.")

        def decode(path):
            image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
            return image, tf.constant(0, tf.int64)

        ds = tf.data.Dataset.from_tensor_slices(paths).map(decode)
    with _layout_of(model):
        batches = eval_pipeline(ds, _preprocessing(model), batch_size=batch_size,
                                channels=model.metadata.get("channels"))
    try:
        probs, _ = _predict_batches(_runner(model), batches, ten_crop=False)
    except tf.errors.OpError:
        if isinstance(images, np.ndarray):
            raise
        _check_images_decode(paths)  # names every file that does not decode
        raise
    names = _class_names(model, probs.shape[1])
    k = min(top_k, probs.shape[1])
    return [[(names[i], float(p[i])) for i in np.argsort(-p)[:k]] for p in probs]


def _check_images_decode(paths):
    """Raise a ValueError naming each file that does not decode, if any.

    Run only after the pipeline failed (files are decoded once, in tf.data,
    which fails with TensorFlow's message and no file name)."""
    bad = unreadable_images(paths)
    if bad:
        raise ValueError(f"images: {len(bad)} file(s) are not images kcnn can decode (JPEG, "
                         f"PNG, BMP, GIF): {'; '.join(f'{p} ({r})' for p, r in bad)}.")


def _preprocessing(model):
    meta = getattr(model, "metadata", None) or {}
    if "preprocessing" not in meta:
        raise ValueError(f"model {model.name!r} has no kcnn metadata record; build it with "
                         "a kcnn builder or train it with kcnn.train.")
    return meta["preprocessing"]


def _class_names(model, n):
    names = model.metadata.get("class_names")
    return list(names) if names and len(names) == n else [str(i) for i in range(n)]


def _runner(model):
    """What runs the batches: the folded Keras model, or the export itself."""
    return inference_model(model) if isinstance(model, keras.Model) else model


@contextlib.contextmanager
def _layout_of(model):
    """Build pipelines in the layout the model's layers take."""
    fmt = (export_metadata.data_format(model) if isinstance(model, keras.Model)
           else model.data_format)
    before = keras.config.image_data_format()
    keras.config.set_image_data_format(fmt)
    try:
        yield
    finally:
        keras.config.set_image_data_format(before)


def _ends_in_softmax(model):
    if isinstance(model, keras.Model):
        return ends_in_softmax(model)
    return model.output == "probabilities"


def _predict_batches(model, dataset, ten_crop):
    with warnings.catch_warnings():
        # A model loaded from a .keras file keeps its inputs as a one-item
        # list and warns when given the bare tensor, which it then accepts.
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        return _predict_all(model, dataset, ten_crop)


def _predict_all(model, dataset, ten_crop):
    """Probabilities (float64) and labels of every batch, in the dataset's order."""
    labels = []

    def images():
        for x, y in dataset.as_numpy_iterator():
            labels.append(y.argmax(axis=-1) if y.ndim == 2 else y)
            # Ten crops of b images predict as b * 10 images.
            yield x.reshape((-1,) + x.shape[2:]) if ten_crop else x

    out = np.concatenate(list(_outputs(model, images())))
    if isinstance(model, keras.Model) or model.output != "features":
        out = _to_probs(out, not _ends_in_softmax(model))
    probs = out
    if ten_crop:
        probs = probs.reshape(-1, 10, probs.shape[-1]).mean(axis=1)
    return probs.astype(np.float64), np.concatenate(labels).astype(np.int64)


def _outputs(model, batches):
    """The model's outputs for each batch, from Keras's compiled predict function."""
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow's trainer only
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        # predict_on_batch would give each replica the whole batch; predict splits it.
        yield model.predict(((x,) for x in batches), verbose=0)
        return
    for x in batches:
        yield model.predict_on_batch(x)


def _to_probs(out, softmax):
    if not softmax:
        return out
    e = np.exp(out - out.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _per_class(matrix, names):
    report = {}
    for i, name in enumerate(names):
        tp = matrix[i, i]
        support = int(matrix[i].sum())
        predicted = int(matrix[:, i].sum())
        precision = float(tp / predicted) if predicted else 0.0
        recall = float(tp / support) if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[name] = {"precision": precision, "recall": recall, "f1": f1,
                        "support": support}
    return report
