"""Exported files opened in their own runtime, to predict like the Keras model.

    model = kcnn.load_model("resnet18.onnx")    # or .tflite, .xml, .pt2, a SavedModel
    model.predict(x)                             # preprocessed float batches
    kcnn.predict(model, "cat.jpg")               # images, with its preprocessing
    kcnn.evaluate("resnet18.tflite", "images/")  # a path works wherever a model does

Each format's module opens the file (`open(path)`: onnxruntime, LiteRT's
interpreter, OpenVINO's CPU runtime, `torch.export.load`, TensorFlow for a
SavedModel) and reads kcnn's metadata record (`read_metadata(path)`, see
`kcnn.exporting.metadata`), so that `kcnn.predict` and `kcnn.evaluate` apply
the preprocessing the model was trained with and report its class names. A
torchvision state dict holds weights only: it is refused with what to do.
"""

import importlib
import os

import numpy as np


class ExportedModel:
    """A kcnn export, callable on preprocessed float32 batches.

    Attributes:
        path, format: the file and its kcnn format name.
        name: the Keras model's name.
        metadata: the Keras model's `metadata` (preprocessing, class names...).
        input_shape: one example's shape, as the Keras model took it.
        data_format: "channels_last" or "channels_first".
        output: "probabilities", "logits" or "features".
        classes: the number of classes (None for features).
    """

    def __init__(self, path, format, function, record):
        self.path, self.format = path, format
        self._function = function
        record = record or {}
        self.record = record
        self.name = record.get("name", os.path.basename(path))
        self.metadata = record.get("metadata", {})
        self.input_shape = tuple(record.get("input_shape") or ())
        self.data_format = record.get("data_format", "channels_last")
        self.output = record.get("output", "logits")
        names = self.metadata.get("class_names")
        self.classes = None if self.output == "features" else (len(names) if names else None)

    def __call__(self, x):
        return np.asarray(self._function(np.asarray(x, np.float32)))

    predict_on_batch = __call__

    def predict(self, x, batch_size=32):
        """Outputs for a float32 array of any length, `batch_size` at a time."""
        x = np.asarray(x, np.float32)
        return np.concatenate([self(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def __repr__(self):
        return f"<ExportedModel {self.name!r} ({self.format}) from {self.path!r}>"


def export_format(path):
    """The kcnn format of an exported file or folder at `path`, or None."""
    from kcnn.exporting import _ROUTES

    path = os.fspath(path)
    if os.path.isdir(path):
        return "saved_model" if os.path.isfile(os.path.join(path, "saved_model.pb")) else None
    for format, route in _ROUTES.items():
        if format != "keras" and route.suffixes and path.endswith(route.suffixes):
            return format
    return None


def open_export(path, *, argument="model"):
    """An `ExportedModel` for the export at `path` (see `export_format`)."""
    from kcnn.exporting import _ROUTES

    from kcnn.loading import MissingFileError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(f"{argument}={path!r}: no such file or folder.")
    format = export_format(path)
    if format is None:
        raise ValueError(f"{argument}={path!r} is not a file kcnn exports (a SavedModel "
                         "folder, .onnx, .tflite, .xml, .pt2) or a .keras file.")
    module = importlib.import_module(f"kcnn.exporting.{_ROUTES[format].module}")
    function = module.open(path)  # a torchvision state dict refuses, with what to do
    return ExportedModel(path, format, function, module.read_metadata(path))
