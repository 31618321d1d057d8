"""Preprocessing records, `preprocess_input` and `decode_predictions`.

A preprocessing record is the evaluation transform a model expects, as a plain
dict kept in `model.metadata["preprocessing"]` and in each weight entry: pixels
scaled by `scale` (1/255: [0, 1]), then (x - mean) / std per channel, after the
shorter side is resized to `resize` with `interpolation` and a centre crop of
`crop` is taken (torchvision's `ImageClassification` transform). Pretrained
weights bring their own (ResNet-50's V2 weights resize to 232, EfficientNets
use bicubic and larger crops, VGG-16's features weights other statistics).
"""

import keras
import numpy as np

from kcnn import checks
from kcnn.weights.imagenet_classes import IMAGENET_CLASSES

# torchvision's ImageNet statistics on [0, 1] pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def record(*, crop, resize=None, mean=None, std=None, channels=3,
           interpolation="bilinear"):
    """A preprocessing record: pixels scaled to [0, 1], then (x - mean) / std.

    `resize` is the shorter side before the centre crop of `crop` (None: the
    whole image is resized to `crop`). Without `mean`/`std` the pixels stay in
    [0, 1].
    """
    return {
        "scale": 1.0 / 255.0,
        "mean": [float(m) for m in mean] if mean is not None else [0.0] * channels,
        "std": [float(s) for s in std] if std is not None else [1.0] * channels,
        "resize": resize,
        "crop": crop,
        "interpolation": interpolation,
    }


def imagenet_record(crop=224, resize=256, interpolation="bilinear"):
    """torchvision's ImageNet evaluation transform (resize 256, crop 224 by default)."""
    return record(crop=crop, resize=resize, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  interpolation=interpolation)


def preprocess_input(x, preprocessing=None, data_format=None):
    """Normalise pixel values in [0, 255] as a model or its weights expect.

    Like `keras.applications.*.preprocess_input`: the input is a batch or a
    single image of RGB pixel values (uint8 or float, not resized here), the
    output float32 `(x * scale - mean) / std` per channel. A NumPy array gives
    a NumPy array, anything else a backend tensor.

    Args:
        x: pixels, channels in the order of `data_format`.
        preprocessing: a preprocessing record, a kcnn model (its
            `metadata["preprocessing"]`), or None for torchvision's ImageNet
            statistics.
        data_format: "channels_last" or "channels_first" (default:
            `keras.config.image_data_format()`).
    """
    if preprocessing is None:
        preprocessing = imagenet_record()
    elif not isinstance(preprocessing, dict):
        meta = getattr(preprocessing, "metadata", None) or {}
        if "preprocessing" not in meta:
            raise ValueError(
                f"preprocessing must be a preprocessing record (a dict), a kcnn model "
                f"or None; received {preprocessing!r}, which has no kcnn metadata."
            )
        preprocessing = meta["preprocessing"]
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first'; received "
            f"data_format={data_format!r}."
        )
    ndim = len(x.shape)
    axis = -1 if data_format == "channels_last" else -3
    if ndim < 3 or x.shape[axis] != len(preprocessing["mean"]):
        raise ValueError(
            f"preprocess_input expects images with {len(preprocessing['mean'])} "
            f"channels on axis {axis} ({data_format}); received shape {tuple(x.shape)}."
        )
    shape = [1] * ndim
    shape[axis] = len(preprocessing["mean"])
    scale = preprocessing["scale"]
    mean = np.reshape(np.asarray(preprocessing["mean"], np.float32), shape)
    std = np.reshape(np.asarray(preprocessing["std"], np.float32), shape)
    # (x * scale - mean) / std as one multiply and one add.
    factor, offset = scale / std, -mean / std
    if isinstance(x, np.ndarray):
        return (x.astype(np.float32) * factor + offset).astype(np.float32)
    x = keras.ops.cast(x, "float32")
    return x * keras.ops.convert_to_tensor(factor) + keras.ops.convert_to_tensor(offset)


def decode_predictions(preds, top=5):
    """The `top` ImageNet classes of each prediction, like keras.applications'.

    Args:
        preds: scores or probabilities of shape (samples, 1000), in
            torchvision's (and tensorflow-datasets') class order.
        top: how many classes to return per sample.

    Returns:
        One list per sample of `(wordnet_id, class_name, score)` tuples, the
        highest score first.
    """
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    if preds.ndim != 2 or preds.shape[1] != len(IMAGENET_CLASSES):
        raise ValueError(
            f"decode_predictions expects a batch of ImageNet predictions of shape "
            f"(samples, {len(IMAGENET_CLASSES)}); received shape {preds.shape}."
        )
    checks.positive_int("top", top)
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(*IMAGENET_CLASSES[i], float(row[i])) for i in best])
    return results
