"""Ship a model: one call for every format a user serves or hands on.

    kcnn.export(model, "served/alexnet")                      # TensorFlow SavedModel
    kcnn.export(model, "alexnet.onnx", format="onnx")
    kcnn.export(model, "mobilenet.tflite", format="litert", quantize="int8",
                representative_data="images/")
    kcnn.export(model, "resnet.xml", format="openvino")
    kcnn.export(model, "resnet.pt2", format="pt2")
    kcnn.export(model, "resnet18.pth", format="torchvision")
    kcnn.export("model.keras", "served/alexnet")              # from a saved file

| format        | path            | what it is                                  | module here   |
|---------------|-----------------|---------------------------------------------|---------------|
| "saved_model" | a directory     | TensorFlow SavedModel serving raw images    | saved_model   |
| "onnx"        | `.onnx`         | ONNX, the model's float input               | onnx          |
| "litert"      | `.tflite`       | LiteRT (TFLite), float, float16 or int8     | litert        |
| "openvino"    | `.xml` (+`.bin`)| OpenVINO IR                                 | openvino      |
| "pt2"         | `.pt2`          | PyTorch ExportedProgram (`torch.export`)    | pt2           |
| "torchvision" | `.pth` or `.pt` | a state dict for torchvision's own builder  | torchvision   |
| "keras"       | `.keras`        | Keras's own file                            | (here)        |

Every backend exports every format. A format that another backend writes
(SavedModel, ONNX and LiteRT from TensorFlow; OpenVINO from JAX through
TensorFlow; `.pt2` from torch) goes through
the model's `.keras` file into a child process on that backend, automatically
(`_ROUTES` says which). The graph exports (SavedModel, ONNX, LiteRT, OpenVINO,
`.pt2`) run the model with its batch norms folded into the convolutions before
them (`kcnn.fold_batch_norm`); `.keras` and torchvision state dicts keep them.

Each export carries kcnn's metadata (preprocessing, class names, channels,
input layout): inside the file where the format holds it, else in a `.json`
beside it (`kcnn.exporting.metadata`), so that `kcnn.load_model(path)` and
`kcnn predict` open what was exported and predict on images with the model's
own preprocessing.

An export never replaces what is at `path` (or beside it) unless
`overwrite=True`, and a failed export leaves nothing behind: it is written to
a temporary sibling folder and renamed into place.

A format module provides `write(model, out, **options)`, which writes `out`
(and its companions, named as `_Route.companions` says) from a Keras model on
a backend in `_Route.backends`, and `open(path)`, which returns a function of
a float32 batch (the model's input, already preprocessed) to a numpy array.
"""

import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np

from kcnn import checks, loading
from kcnn.folding import fold_batch_norm

ALL_BACKENDS = ("tensorflow", "jax", "torch")
QUANTIZE = ("float16", "dynamic", "int8")


@dataclasses.dataclass(frozen=True)
class _Route:
    """How one format is written, and from where."""

    module: str  # kcnn.exporting.<module> (None: .keras, written here)
    backends: tuple  # the backends that write it in this process
    child: str = None  # the backend of the process that writes it from the others
    suffixes: tuple = ()  # what `path` must end in (empty: a directory)
    folds: bool = True  # written with batch norms folded (a graph export)
    options: tuple = ()  # the export() options the writer takes
    # Files written beside `path`: ".bin" replaces path's suffix, "+.json" is
    # appended to path.
    companions: tuple = ()

    def files(self, path):
        """`path` and its companions."""
        stem = os.path.splitext(path)[0]
        return [path] + [path + c[1:] if c.startswith("+") else stem + c
                         for c in self.companions]


_ROUTES = {
    "saved_model": _Route("saved_model", ("tensorflow", "jax"), "tensorflow",
                          options=("top_k",)),
    # jax2onnx fails on max pooling; torch's ONNX export drops Keras's names.
    "onnx": _Route("onnx", ("tensorflow",), "tensorflow", suffixes=(".onnx",)),
    # Keras refuses LiteRT from JAX and needs litert-torch on torch.
    "litert": _Route("litert", ("tensorflow",), "tensorflow", suffixes=(".tflite",),
                     options=("quantize", "representative_data"), companions=("+.json",)),
    # Keras's OpenVINO path from JAX needs jax2tf without native serialization,
    # which JAX 0.10 removed (OpenVINO cannot convert XlaCallModule).
    "openvino": _Route("openvino", ("tensorflow", "torch"), "tensorflow", suffixes=(".xml",),
                       companions=(".bin",)),
    # Keras's format="torch" exists on the torch backend only.
    "pt2": _Route("pt2", ("torch",), "torch", suffixes=(".pt2",)),
    "torchvision": _Route("torchvision", ALL_BACKENDS, suffixes=(".pth", ".pt"),
                          folds=False, companions=("+.json",)),
    "keras": _Route(None, ALL_BACKENDS, suffixes=(".keras",), folds=False),
}
FORMATS = tuple(_ROUTES)


def export(model, path, format="saved_model", *, overwrite=False, top_k=5, quantize=None,
           representative_data=None, verbose=False):
    """Export `model` (a Keras model or a `.keras` file path) to `path`.

    Args:
        model: a kcnn model (any builder, trained or not, or loaded from a
            `.keras` file) or the path of a `.keras` file.
        path: where to write, as the module's table says for each format.
        format: one of `FORMATS` (see the module's docstring).
        overwrite: replace an existing `path` (and its companions); otherwise
            refuse.
        top_k: how many top classes the SavedModel's signatures return.
        quantize: "litert" only: None (float32), "float16" (weights),
            "dynamic" (int8 weights, float activations) or "int8" (weights and
            activations, calibrated on `representative_data`).
        representative_data: "litert" with quantize="int8": anything
            `kcnn.data.load` takes (a folder, "digits", raw `(x, y)` arrays);
            a few hundred images run through the model's own eval pipeline.

    Returns:
        `path`.
    """
    if format not in _ROUTES:
        raise ValueError(f"format must be one of {FORMATS}; received format={format!r}.")
    route = _ROUTES[format]
    checks.positive_int("top_k", top_k)
    options = _options(format, route, top_k=top_k, quantize=quantize,
                       representative_data=representative_data)
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file or directory path (str or os.PathLike); "
                         f"received path={path!r}.")
    path = os.path.abspath(os.fspath(path))
    if route.suffixes and not path.endswith(route.suffixes):
        allowed = " or ".join(repr(s) for s in route.suffixes)
        raise ValueError(f"path must end in {allowed} for format={format!r}; "
                         f"received {path!r}.")
    targets = route.files(path)
    for target in targets:
        _check_target(target, overwrite)
    model_file = None
    if isinstance(model, (str, os.PathLike)):
        model_file = loading.check_keras_file(model)
    elif not isinstance(model, keras.Model):
        raise ValueError(f"model must be a Keras model or the path of a .keras file; "
                         f"received {type(model).__name__}.")

    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        out_dir = os.path.join(work, "out")
        os.makedirs(out_dir)
        out = os.path.join(out_dir, os.path.basename(path))
        if keras.backend.backend() in route.backends:
            if model_file is not None:
                model = keras.saving.load_model(model_file)
            if route.folds:
                model = fold_batch_norm(model)
            _write(format, model, out, verbose=verbose, **options)
        else:
            if model_file is None:
                model_file = os.path.join(work, "model.keras")
                model.save(model_file)
            _export_in_child(route.child, model_file, out, format, options, work)
        _replace([(t, os.path.join(out_dir, os.path.basename(t))) for t in targets], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _options(format, route, **given):
    """The options `format`'s writer takes; any other one set is refused."""
    defaults = {"top_k": 5, "quantize": None, "representative_data": None}
    for name, value in given.items():
        if name not in route.options and value is not defaults[name]:
            takers = [f for f, r in _ROUTES.items() if name in r.options]
            raise ValueError(f"{name} applies to format={takers[0]!r} only; received "
                             f"{name}={value!r} with format={format!r}.")
    quantize = given["quantize"]
    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"quantize must be None or one of {QUANTIZE}; received "
                         f"quantize={quantize!r}.")
    if quantize == "int8" and given["representative_data"] is None:
        raise ValueError("quantize='int8' calibrates on representative_data: pass a few "
                         "hundred images (a folder, a dataset name or (x, y) arrays).")
    if given["representative_data"] is not None and quantize != "int8":
        raise ValueError(f"representative_data is used by quantize='int8' only; received "
                         f"quantize={quantize!r}.")
    return {name: given[name] for name in route.options}


def _write(format, model, out, **options):
    """Write `out` with this process's backend."""
    route = _ROUTES[format]
    if route.module is None:  # .keras
        model.save(out)
        return
    module = importlib.import_module(f"{__name__}.{route.module}")
    module.write(model, out, **options)


def _check_target(path, overwrite):
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be True or False; received overwrite={overwrite!r}.")
    if overwrite or not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.listdir(path):
        return
    raise ValueError(f"path={path!r} exists and is not empty; pass overwrite=True to "
                     f"replace it (nothing was written).")


def _replace(moves, work):
    """Move each finished file (target, written) into place, all or none.

    Old files go aside into `work` first and come back if a move fails.
    """
    aside, done = [], []
    try:
        for i, (target, written) in enumerate(moves):
            if os.path.lexists(target):
                old = os.path.join(work, f"old-{i}")
                if os.path.isdir(target) and not os.listdir(target):
                    os.rmdir(target)
                else:
                    os.replace(target, old)
                    aside.append((old, target))
            if os.path.lexists(written):  # a companion is optional (no .json)
                os.replace(written, target)
                done.append(target)
    except BaseException:
        for target in done:
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            elif os.path.lexists(target):
                os.remove(target)
        for old, target in aside:
            os.replace(old, target)
        raise


def _export_in_child(backend, model_file, out, format, options, work):
    """Run `kcnn export` on `backend` in a child process."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "kcnn", "export", model_file, out, "--format", format]
    if "top_k" in options:
        command += ["--top-k", str(options["top_k"])]
    if options.get("quantize"):
        command += ["--quantize", options["quantize"]]
    data = options.get("representative_data")
    if data is not None:
        command += ["--representative-data", _data_for_child(data, work)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"exporting {model_file} to {format} in a {backend} process "
                           f"failed (exit code {result.returncode}):\n{tail}")


def _data_for_child(data, work):
    """`representative_data` as a command-line argument: arrays go to an .npz."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        path = os.path.join(work, "representative.npz")
        np.savez(path, x=np.asarray(data[0]), y=np.asarray(data[1]))
        return path
    raise ValueError("representative_data must be a folder, a dataset name or (x, y) "
                     f"arrays; received {type(data).__name__}.")


def data_from_argument(value):
    """The command line's `--representative-data`: an .npz of x and y, else as given."""
    if value is not None and value.endswith(".npz") and os.path.isfile(value):
        with np.load(value) as arrays:
            return arrays["x"], arrays["y"]
    return value
