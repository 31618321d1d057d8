"""Models as objects or as saved files: the one door every public function uses.

Every kcnn function that takes a Keras model also takes the path of a `.keras`
file, as the command line does: a string (or path) ending in `.keras` is a
file; any other string stays what the function made of strings before (a
registered model name where names are allowed). A file that is missing says
so; a file that exists but is not a `.keras` archive (truncated, or another
format renamed) says that, instead of Keras's "File not found".
"""

import os
import zipfile

import keras


class MissingFileError(FileNotFoundError, ValueError):
    """A file argument that names no file. A `FileNotFoundError`, and a
    `ValueError` like every other bad argument kcnn reports (so callers and the
    command line that catch `ValueError` keep working)."""


def is_keras_path(value):
    """True for a str or path that names a `.keras` file (existing or not)."""
    return isinstance(value, (str, os.PathLike)) and os.fspath(value).endswith(".keras")


def check_keras_file(path, *, argument="model"):
    """`path` as a str, after checking it names an existing `.keras` archive."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"{argument}={path!r}: kcnn opens models saved as '.keras' files; "
                         "save one with model.save('model.keras').")
    if not os.path.isfile(path):
        raise MissingFileError(f"{argument}={path!r}: no such file (expected a .keras file).")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{argument}={path!r} is not a valid .keras file (a .keras file is "
                         "a zip archive; this one is truncated or another format).")
    return path


def load_model(path, *, compile=False, argument="model", exported=True):
    """A model from a `.keras` file, or an exported one (`kcnn.load_model`).

    A `.keras` file gives a Keras model with kcnn's custom layers registered;
    `compile=False` by default: kcnn's readers predict and evaluate with their
    own preprocessing, and trainers compile with their own recipe. With
    `exported=True`, a file `kcnn.export` wrote gives an `ExportedModel` that
    predicts in the format's own runtime (see `kcnn.exporting.runtime`).
    """
    if exported and not is_keras_path(path) and isinstance(path, (str, os.PathLike)):
        from kcnn.exporting.runtime import open_export

        return open_export(path, argument=argument)
    path = check_keras_file(path, argument=argument)
    try:
        return keras.saving.load_model(path, compile=compile)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{argument}={path!r} is not a valid .keras file: {e}") from e


def as_model(model, *, argument="model", compile=False, exported=False):
    """`model` itself when it is a Keras model; the loaded model for a `.keras` path.

    With `exported=True` (readers of predictions only), an `ExportedModel` or
    the path of an export is taken too.
    """
    if isinstance(model, keras.Model):
        return model
    if exported:
        from kcnn.exporting.runtime import ExportedModel, export_format

        if isinstance(model, ExportedModel):
            return model
        if isinstance(model, (str, os.PathLike)) and export_format(model) is not None:
            return load_model(model, argument=argument)
    if is_keras_path(model):
        return load_model(model, compile=compile, argument=argument, exported=False)
    what = "a Keras model or the path of a .keras file"
    if exported:
        what += " or of a kcnn export (SavedModel, .onnx, .tflite, .xml, .pt2)"
    raise ValueError(f"{argument} must be {what}; received {argument}={model!r}.")
