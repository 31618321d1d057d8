"""Grad-CAM overlays for image files (what `kcnn explain` writes)."""

import os

import keras
import numpy as np

from kcnn.inspect import plotting
from kcnn.inspect.gradcam import gradcam
from kcnn.loading import MissingFileError, as_model


def explain(model, images, out_dir, *, layer=None, class_index=None, alpha=0.4):
    """Write a Grad-CAM overlay PNG for each image file.

    Each image gets the model's evaluation preprocessing (resize, centre crop,
    normalisation, from `model.metadata`); the overlay shows the crop the model
    saw with the heatmap on top, as `<out_dir>/<image name>_gradcam.png`.

    Args:
        model: a kcnn model (or one loaded from a `.keras` file kcnn wrote).
        images: a path or a list of paths (JPEG, PNG, BMP, GIF).
        out_dir: the folder for the overlays (created if needed).
        layer, class_index: as for `kcnn.gradcam` (default: the predicted class).
        alpha: the heatmap's weight in the overlay.

    Returns:
        One dict per image: `image`, `overlay` (the PNG written), `class_index`,
        `class_name` and `probability` of the explained class.
    """
    from kcnn.data.sources import unreadable_images  # TensorFlow: only when explaining
    model = as_model(model)
    paths = [os.fspath(images)] if isinstance(images, (str, os.PathLike)) else \
        [os.fspath(p) for p in images]
    if not paths:
        raise ValueError("images must be a path or a non-empty list of paths; "
                         f"received images={images!r}.")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise MissingFileError(f"images: no such file(s): {', '.join(missing)}.")
    unreadable = unreadable_images(paths)
    if unreadable:
        raise ValueError("images: not an image file that can be decoded: "
                         + "; ".join(f"{p} ({reason})" for p, reason in unreadable) + ".")
    if not isinstance(out_dir, (str, os.PathLike)) or os.path.isfile(out_dir):
        raise ValueError(f"out_dir must be a folder (created if needed); received "
                         f"out_dir={out_dir!r}.")
    x, display = load_images(model, paths)
    probs = _probabilities(model, x)
    chosen = probs.argmax(axis=-1) if class_index is None else class_index
    heatmaps = gradcam(model, x, class_index=chosen, layer=layer)
    chosen = np.broadcast_to(np.atleast_1d(chosen), (len(paths),))
    names = model.metadata.get("class_names") or []
    results = []
    taken = set()
    for path, image, heatmap, k, p in zip(paths, display, heatmaps, chosen, probs):
        stem = os.path.splitext(os.path.basename(path))[0]
        out, n = stem, 1
        while out in taken:
            n += 1
            out = f"{stem}_{n}"
        taken.add(out)
        overlay_path = os.path.join(out_dir, f"{out}_gradcam.png")
        plotting.overlay(image, heatmap, overlay_path, alpha=alpha)
        k = int(k)
        results.append({"image": path, "overlay": overlay_path, "class_index": k,
                        "class_name": names[k] if k < len(names) else str(k),
                        "probability": float(p[k])})
    return results


def load_images(model, paths):
    """Image files as the model takes them, and as pixels to draw on.

    Returns `(x, display)`: `x` float32 (N, ...) in the model's layout after its
    evaluation preprocessing; `display` uint8 (N, height, width, channels), the
    same crops in pixels.
    """
    import tensorflow as tf

    from kcnn.data import eval_pipeline

    record = (getattr(model, "metadata", None) or {}).get("preprocessing")
    if record is None:
        raise ValueError(f"model {model.name!r} has no kcnn metadata record (its "
                         "preprocessing); build it with a kcnn builder or train it with "
                         "kcnn.train.")

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return image, tf.constant(0, tf.int64)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(decode)
    batches = eval_pipeline(ds, record, batch_size=len(paths),
                            channels=model.metadata.get("channels"))
    x = np.concatenate([images.numpy() for images, _ in batches]).astype("float32")
    pixels = x.transpose(0, 2, 3, 1) if keras.config.image_data_format() == "channels_first" \
        else x
    pixels = (pixels * np.array(record["std"]) + np.array(record["mean"])) / record["scale"]
    return x, np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _probabilities(model, x):
    out = model(x, training=False)
    if isinstance(out, (list, tuple)):
        out = out[0]
    out = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)
    last = getattr(model.layers[-1], "activation", None)
    if getattr(last, "__name__", "") == "softmax":
        return out
    e = np.exp(out - out.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
