"""kcnn's metadata record for an exported file, and the model facts exports share.

Every export carries one JSON record: the model's own `metadata` (its
preprocessing, channels, class names, weights) plus what a runtime needs to
feed and read the exported graph without Keras:

    {"kcnn_export": 1, "name": "resnet18", "format": "onnx",
     "input_shape": [224, 224, 3], "data_format": "channels_last",
     "output": "probabilities" | "logits" | "features",
     "metadata": {...model.metadata...}}

Inside the file where the format has room for it (SavedModel
`assets.extra/kcnn.json`, ONNX `metadata_props`, OpenVINO `rt_info`, `.pt2`
extra files), else in `<path>.json` beside it (LiteRT, torchvision state dicts).
"""

import json
import os

import keras

VERSION = 1


def data_format(model):
    """The layers' own data format: a model loaded from a file keeps the one it
    was built with, whatever `keras.config.image_data_format()` says now."""
    for layer in model.layers:
        fmt = getattr(layer, "data_format", None)
        if fmt in ("channels_first", "channels_last"):
            return fmt
    return keras.config.image_data_format()


def is_classifier(model, metadata):
    shape = model.outputs[0].shape
    names = metadata.get("class_names") or []
    return len(shape) == 2 and shape[-1] is not None and (
        not names or len(names) == shape[-1])


def class_names(model, metadata):
    n = int(model.outputs[0].shape[-1])
    names = metadata.get("class_names")
    return [str(c) for c in names] if names and len(names) == n else [str(i) for i in range(n)]


def record(model, format):
    """The JSON-ready record of `model` exported as `format`."""
    from kcnn.models._common import ends_in_softmax

    metadata = dict(getattr(model, "metadata", None) or {})
    if not is_classifier(model, metadata):
        output = "features"
    else:
        output = "probabilities" if ends_in_softmax(model) else "logits"
    return {"kcnn_export": VERSION, "name": model.name, "format": format,
            "input_shape": [None if d is None else int(d) for d in model.inputs[0].shape[1:]],
            "data_format": data_format(model), "output": output,
            "metadata": json.loads(json.dumps(metadata, default=_plain))}


def dumps(model, format):
    return json.dumps(record(model, format), indent=1)


def write_json(model, path, format):
    with open(path, "w") as f:
        f.write(dumps(model, format))


def sidecar(path):
    """Where a format without room for metadata keeps it: `<path>.json`."""
    return os.fspath(path) + ".json"


def loads(text, *, source):
    """A record from its JSON text; a clear error if it is not kcnn's."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{source}: kcnn's metadata record is not valid JSON ({e}).") from e
    if not isinstance(value, dict) or "kcnn_export" not in value:
        raise ValueError(f"{source}: not a kcnn metadata record (no 'kcnn_export' key).")
    if value["kcnn_export"] > VERSION:
        raise ValueError(f"{source}: written by a newer kcnn (record version "
                         f"{value['kcnn_export']}; this kcnn reads up to {VERSION}).")
    return value


def read_json(path):
    """The record in the file at `path`, or None where there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return loads(f.read(), source=path)


def _plain(value):
    """numpy scalars and arrays in a model's metadata, as JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"kcnn metadata value of type {type(value).__name__} is not JSON")
