"""Pretrained weights by name: the registry of entries, download, cache and loading.

`kcnn.resnet50(weights="imagenet")` resolves the name to an entry (torchvision's
`DEFAULT` weights for that builder; `weights="IMAGENET1K_V1"` picks one by
torchvision's name), then:

1. if `$KERAS_HOME/models/kcnn/<file>.weights.h5` exists, loads it: no network,
   no torch;
2. otherwise downloads the published file to a temporary name in that folder
   (with a progress bar), checks its SHA-256 against the published prefix
   (torchvision's file names carry it: `resnet50-0676ba61.pth`), converts it
   once onto a reference model (the builder's default configuration: with the
   top, 1000 classes, RGB) and saves that as a Keras `.weights.h5` under a
   temporary name, renamed into place only when complete. Any failure removes
   the temporary files: the cache never holds a partial or unverified file.

A model in the reference configuration loads the file directly. Other
configurations (`include_top=False`, a grayscale input, GoogLeNet's auxiliary
heads) get the reference model's weights copied by layer name: the classifier
is left out, and a one-channel first convolution gets the colour channels'
kernels summed, so that a grey image x gives what the RGB image (x, x, x) would.

Machines without direct internet access set `KCNN_WEIGHTS_MIRROR` to a base URL
or a local directory that holds the same file names. `register` adds entries,
so a team's own fine-tuned files resolve by name the same way.
"""

import dataclasses
import fnmatch
import glob
import hashlib
import http.client
import importlib.util
import json
import os
import posixpath
import re
import tempfile
import time
import urllib.parse
import urllib.request
import warnings

import h5py
import keras

from kcnn.weights import catalog
from kcnn.weights.imagenet_classes import IMAGENET_CLASSES
from kcnn.weights.preprocessing import imagenet_record, record
from kcnn.weights.torch_state_dict import (_OPTIONAL_MODULES, _weighted_layers,
                                           load_state_dict, read_pth)

MIRROR_ENV = "KCNN_WEIGHTS_MIRROR"
# Names that select a builder's default (torchvision's DEFAULT) weights.
ALIASES = ("imagenet", "DEFAULT")
# Seconds a download may wait for data before it fails.
TIMEOUT = 60
_CHUNK = 1 << 20
# Temporary files older than this were left by a killed process.
_STALE_SECONDS = 24 * 3600
_URL_SCHEMES = ("http", "https", "file")
_HEX = re.compile(r"^[0-9a-f]{8,64}$")
_PREPROCESSING_KEYS = ("crop", "resize", "mean", "std", "interpolation", "scale")
_IMAGENET_NAMES = tuple(name for _, name in IMAGENET_CLASSES)


class WeightsDownloadError(OSError):
    """Pretrained weights could not be fetched or failed verification.

    The message names the address tried and the manual alternatives (a local
    file passed as `weights=`, or the mirror setting). Nothing is cached.
    """


@dataclasses.dataclass(frozen=True)
class WeightEntry:
    """One downloadable weights file for one builder.

    Attributes:
        model_name: the kcnn builder (`kcnn.list_models()`).
        tag: the name `weights=` takes (torchvision's, e.g. "IMAGENET1K_V2").
        url: where the PyTorch state-dict file is published.
        sha256: the published SHA-256 of the file, or its first hex digits
            (at least 8).
        preprocessing: the evaluation transform the weights expect (see
            `kcnn.weights.preprocessing.record`); it becomes the model's
            `metadata["preprocessing"]`.
        class_names: the classifier's classes, in output order.
        top1, top5: the published accuracy (percent), if any.
        file_size: the file's size in MB, if known.
        features_only: only the feature extractor is trained: the weights load
            with include_top=False only.
        default: selected by `weights="imagenet"` (torchvision's DEFAULT).
        builder_arguments: builder arguments the weights were made with; the
            reference model is built with them, and builders whose argument
            defaults to None take it from here (GoogLeNet's transform_input).
    """

    model_name: str
    tag: str
    url: str
    sha256: str
    preprocessing: dict
    class_names: tuple = _IMAGENET_NAMES
    top1: float | None = None
    top5: float | None = None
    file_size: float | None = None
    features_only: bool = False
    default: bool = False
    builder_arguments: dict = dataclasses.field(default_factory=dict)

    @property
    def classes(self):
        return len(self.class_names)

    @property
    def file_name(self):
        return posixpath.basename(urllib.parse.urlsplit(self.url).path)

    @property
    def cache_path(self):
        """Where the converted `.weights.h5` is cached: file name and hash as key."""
        stem = self.file_name.rsplit(".", 1)[0]
        prefix = self.sha256[:8]
        if not stem.endswith(prefix):
            stem = f"{stem}-{prefix}"
        return os.path.join(cache_dir(), f"{stem}.weights.h5")

    def __str__(self):
        return f"{self.model_name} weights {self.tag!r}"


_ENTRIES = {}

# Builder names are kcnn.registry's to know. It sits above this package (the
# builders it holds import the weights), so it hands its check down.
_model_name_check = None


def check_model_names_with(check):
    """Have `register` call `check(model_name)`, which raises a ValueError for a
    name that is no builder's (`kcnn.registry` passes its `get_builder`)."""
    global _model_name_check
    _model_name_check = check


def _add(entry, overwrite=False):
    key = (entry.model_name, entry.tag)
    if key in _ENTRIES and not overwrite:
        raise ValueError(
            f"{entry.model_name} already has weights named {entry.tag!r} "
            f"({_ENTRIES[key].url}); pass overwrite=True to replace them."
        )
    _ENTRIES[key] = entry
    return entry


for _row in catalog.ROWS:
    _add(WeightEntry(**_row))
del _row


def register(model_name, tag, url, sha256, *, preprocessing=None, class_names=None,
             top1=None, top5=None, file_size=None, features_only=False,
             builder_arguments=None, overwrite=False):
    """Publish a weights file under a name, so that `weights=tag` resolves it.

        kcnn.weights.register("resnet50", "acme_flowers_v1",
                              "https://models.acme.com/resnet50_flowers-1f2e3d4c.pth",
                              "1f2e3d4c", class_names=["daisy", "rose", "tulip"])
        model = kcnn.resnet50(weights="acme_flowers_v1", classes=3)

    The file is a PyTorch state dict in torchvision's layout
    (`torch.save(model.state_dict(), path)`), fetched, verified, converted and
    cached like torchvision's weights (the mirror setting applies too).

    Args:
        model_name: a kcnn builder name.
        tag: the name for `weights=` ("imagenet" and "DEFAULT" are reserved).
        url: http(s):// or file:// address of the file.
        sha256: the file's SHA-256 hex digest, or at least its first 8 digits.
        preprocessing: the evaluation transform, a dict with `crop` and any of
            `resize`, `mean`, `std`, `interpolation` (default: torchvision's
            ImageNet transform, resize 256, crop 224, bilinear).
        class_names: the classifier's class names (default: the 1000 ImageNet
            classes); with include_top=True the builder needs
            `classes=len(class_names)`.
        top1, top5, file_size: accuracy (%) and size (MB) for the README table.
        features_only: only the feature extractor is usable (include_top=False).
        builder_arguments: builder arguments the file was made with (dict).
        overwrite: replace an entry of the same builder and tag.

    Returns:
        The `WeightEntry`.
    """
    if _model_name_check is not None:
        _model_name_check(model_name)  # a ValueError naming the close builder names
    if not isinstance(tag, str) or not tag or tag in ALIASES or "/" in tag or "\\" in tag:
        raise ValueError(
            f"tag must be a non-empty name without path separators, other than "
            f"{' and '.join(map(repr, ALIASES))}; received tag={tag!r}."
        )
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in _URL_SCHEMES \
            or not posixpath.basename(urllib.parse.urlsplit(url).path):
        raise ValueError(
            f"url must be an http://, https:// or file:// address of a file; "
            f"received url={url!r}."
        )
    if not isinstance(sha256, str) or not _HEX.match(sha256.lower()):
        raise ValueError(
            f"sha256 must be the file's SHA-256 hex digest or at least its first 8 "
            f"hex digits; received sha256={sha256!r}."
        )
    entry = WeightEntry(
        model_name=model_name, tag=tag, url=url, sha256=sha256.lower(),
        preprocessing=_preprocessing_record(preprocessing),
        class_names=_class_names(class_names), top1=top1, top5=top5,
        file_size=file_size, features_only=bool(features_only),
        builder_arguments=_builder_arguments(builder_arguments))
    return _add(entry, overwrite=overwrite)


def unregister(model_name, tag):
    """Remove the entry `register` added (torchvision's can be removed too)."""
    if _ENTRIES.pop((model_name, tag), None) is None:
        raise ValueError(f"{model_name} has no weights named {tag!r}.")


def list_weights(pattern="*"):
    """The entries of the builders matching the shell-style `pattern`, in table order."""
    if not isinstance(pattern, str):
        raise ValueError(f"pattern must be a shell-style string such as 'resnet*'; "
                         f"received pattern={pattern!r}.")
    return [e for e in _ENTRIES.values() if fnmatch.fnmatchcase(e.model_name, pattern)]


def find_weights(model_name, weights):
    """The entry `weights` names for `model_name`, or None if it names none."""
    if not isinstance(weights, str):
        return None
    if weights in ALIASES:
        return next((e for e in _ENTRIES.values()
                     if e.model_name == model_name and e.default), None)
    return _ENTRIES.get((model_name, weights))


def get_weights(model_name, weights="imagenet"):
    """The entry `weights` names for `model_name`; a ValueError lists the names there are."""
    entry = find_weights(model_name, weights)
    if entry is None:
        raise ValueError(
            f"weights={weights!r} names no weights of {model_name}; "
            f"{available_names(model_name)}."
        )
    return entry


def available_names(model_name):
    """A phrase listing the weight names of `model_name`, for error messages."""
    entries = list_weights(model_name)
    if not entries:
        return f"{model_name} has no published weights (see kcnn.weights.register)"
    names = ([repr(ALIASES[0])] if any(e.default for e in entries) else []) + [
        repr(e.tag) for e in entries]
    return f"the names for {model_name} are {', '.join(names)}"


def markdown_table(pattern="*"):
    """The README table of weights: builder, tag, top-1/top-5, file size."""
    lines = ["| builder | weights | top-1 (%) | top-5 (%) | file (MB) |",
             "|---|---|---:|---:|---:|"]
    for e in list_weights(pattern):
        tag = f"`{e.tag}`" + (f" = `{ALIASES[0]}`" if e.default else "")
        if e.features_only:
            top1, top5 = "features only", ""
        else:
            top1, top5 = (f"{v:.3f}" if v is not None else "" for v in (e.top1, e.top5))
        size = f"{e.file_size:.1f}" if e.file_size is not None else ""
        lines.append(f"| {e.model_name} | {tag} | {top1} | {top5} | {size} |")
    return "\n".join(lines) + "\n"


def cache_dir():
    """`$KERAS_HOME/models/kcnn` (Keras's cache: ~/.keras unless KERAS_HOME is set)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        home = os.path.expanduser("~")
        home = os.path.join(home if os.access(home, os.W_OK) else tempfile.gettempdir(),
                            ".keras")
    return os.path.join(os.path.expanduser(home), "models", "kcnn")


def load(model, entry, build_reference, *, skip_unmatched=False):
    """Load `entry`'s weights into `model`, fetching and converting them first if needed.

    Args:
        model: a built kcnn model whose layers follow torchvision's names.
        entry: a `WeightEntry`.
        build_reference: a function returning the builder's model in the
            reference configuration (see `WeightEntry.builder_arguments`),
            used to convert the file and to copy weights by name into other
            configurations.
        skip_unmatched: leave out layers the model does not have (the
            classifier, when it was built with include_top=False).
    """
    path, reference = _fetch(entry, build_reference)
    if _stored_signature(path) == _signature(model):
        _load_keras_file(model, path, entry)
        return
    if reference is None:
        reference = build_reference()
        _load_keras_file(reference, path, entry)
    copy_weights(reference, model, skip_unmatched=skip_unmatched, description=str(entry))


def fetch(entry, build_reference):
    """The path of `entry`'s cached `.weights.h5`, downloaded and converted if missing.

    `build_reference` as for `load`.
    """
    return _fetch(entry, build_reference)[0]


def _fetch(entry, build_reference):
    """(path, the reference model if it was just converted, else None)."""
    path = entry.cache_path
    if os.path.isfile(path):
        return path, None
    if importlib.util.find_spec("torch") is None:
        raise ImportError(
            f"The {entry} are published as a PyTorch file ({entry.url}); converting "
            f"it once into the Keras cache needs torch (pip install 'kcnn[torch]'). "
            f"Afterwards the cached file loads without torch. Or convert it on a "
            f"machine with torch (kcnn convert {entry.model_name} {entry.file_name} "
            f"OUT.weights.h5) and copy OUT.weights.h5 to {path}."
        )
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    stem = os.path.basename(path)[:-len(".weights.h5")]
    _remove_stale_temporaries(directory, stem)
    fd, part = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=".pth.part")
    converted = None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(entry, out)
        reference = build_reference()
        load_state_dict(reference, read_pth(part), source=f"file {entry.url}",
                        skip_unmatched=entry.features_only)
        fd, converted = tempfile.mkstemp(dir=directory, prefix=f".{stem}.",
                                         suffix=".part.weights.h5")
        os.close(fd)
        reference.save_weights(converted, overwrite=True)
        with h5py.File(converted, "a") as f:
            f.attrs["kcnn_layers"] = json.dumps(_signature(reference))
            f.attrs["kcnn_source"] = entry.url
            f.attrs["kcnn_source_sha256"] = digest
        os.replace(converted, path)
        converted = None
    finally:
        for temporary in (part, converted):
            if temporary is not None and os.path.exists(temporary):
                os.remove(temporary)
    return path, reference


def copy_weights(source, target, *, skip_unmatched=False, description=None):
    """Copy weights from `source` to `target` layer by layer name; check all first.

    A one-channel convolution in `target` whose `source` kernel has three
    input channels gets their sum (grayscale input). Layers of GoogLeNet's
    auxiliary heads missing from `source` keep their weights, with a warning.
    """
    description = description or f"weights of {source.name}"
    available = {layer.name: layer for layer in _weighted_layers(source)}
    assignments, problems, untrained = [], [], []
    for layer in _weighted_layers(target):
        origin = available.pop(layer.name, None)
        if origin is None:
            if layer.name.split("_", 1)[0] in _OPTIONAL_MODULES:
                untrained.append(layer.name)
            else:
                problems.append(f"no weights for layer {layer.name!r}")
            continue
        values = origin.get_weights()
        if len(values) != len(layer.weights):
            problems.append(f"layer {layer.name!r} has {len(layer.weights)} variables, "
                            f"the weights {len(values)}")
            continue
        fitted = [_fit(value, tuple(variable.shape))
                  for value, variable in zip(values, layer.weights)]
        for value, fit, variable in zip(values, fitted, layer.weights):
            if fit is None:
                problems.append(f"{layer.name}.{variable.name} has shape "
                                f"{tuple(variable.shape)}, the weights {value.shape}")
        if all(fit is not None for fit in fitted):
            assignments.append((layer, fitted))
    if available and not skip_unmatched:
        problems.append(f"weights for layers the model does not have: "
                        f"{', '.join(sorted(available))}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(
            f"The {description} do not fit {target.name}; nothing was loaded:\n"
            f"  {shown}{more}"
        )
    for layer, values in assignments:
        layer.set_weights(values)
    if untrained:
        warnings.warn(
            f"The {description} hold no weights for {target.name}'s auxiliary "
            f"classifiers ({', '.join(sorted({n.split('_', 1)[0] for n in untrained}))}), "
            f"which keep their initial weights: train them (torchvision notes that "
            f"those in its file are not trained either).", stacklevel=2)


def _fit(value, shape):
    if value.shape == shape:
        return value
    if (len(shape) == 4 and value.ndim == 4 and shape[2] == 1 and value.shape[2] == 3
            and shape[:2] + shape[3:] == value.shape[:2] + value.shape[3:]):
        return value.sum(axis=2, keepdims=True)  # grayscale input, RGB weights
    return None


def _signature(model):
    """The weighted layers' names and variable shapes, in order (JSON-comparable)."""
    return [[layer.name, [[int(d) for d in v.shape] for v in layer.weights]]
            for layer in _weighted_layers(model)]


def _stored_signature(path):
    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("kcnn_layers")
    except OSError as e:
        raise ValueError(
            f"The cached weights file {path} is unreadable ({e}); delete it to "
            f"download and convert the weights again."
        ) from e
    return json.loads(stored) if stored is not None else None


def _load_keras_file(model, path, entry):
    try:
        model.load_weights(path)
    except Exception as e:  # Keras raises several types for mismatches.
        raise ValueError(
            f"The cached {entry} ({path}) do not load into {model.name}: {e}. "
            f"Delete the file to download and convert them again."
        ) from e


def _source(entry):
    """Where to fetch `entry`'s file: its URL, or the mirror's copy."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return entry.url
    if urllib.parse.urlsplit(mirror).scheme in _URL_SCHEMES:
        return mirror.rstrip("/") + "/" + entry.file_name
    if not os.path.isdir(mirror):
        raise WeightsDownloadError(
            f"{MIRROR_ENV}={mirror!r} is neither an http(s):// or file:// base address "
            f"nor an existing directory. It should hold {entry.file_name} "
            f"(published at {entry.url})."
        )
    return os.path.join(mirror, entry.file_name)


def _download(entry, out):
    """Stream the file into `out`, verify its hash; return the hex digest."""
    source = _source(entry)
    digest = hashlib.sha256()
    received, total = 0, None
    try:
        if os.path.isabs(source) or not urllib.parse.urlsplit(source).scheme:
            if not os.path.isfile(source):
                raise _failure(entry, source, "no such file in the mirror directory")
            with open(source, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
        else:
            print(f"Downloading {entry} from {source}")
            request = urllib.request.Request(source, headers={"User-Agent": "kcnn"})
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                progress = keras.utils.Progbar(total)
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    progress.update(received)
    except WeightsDownloadError:
        raise
    except (OSError, http.client.HTTPException) as e:
        what = f"the transfer stopped after {received:,} bytes" if received else "failed"
        raise _failure(entry, source, f"{what} ({type(e).__name__}: {e})") from e
    if total is not None and received != total:
        raise _failure(entry, source, f"the transfer stopped after {received:,} of "
                                      f"{total:,} bytes")
    hexdigest = digest.hexdigest()
    if not hexdigest.startswith(entry.sha256):
        raise _failure(entry, source, f"the file's SHA-256 is {hexdigest}, which does "
                                      f"not start with the published {entry.sha256}: "
                                      f"the file is corrupt or not the published one")
    return hexdigest


def _failure(entry, source, what):
    where = source if source == entry.url else f"{source} (mirror of {entry.url})"
    return WeightsDownloadError(
        f"Could not fetch the {entry} from {where}: {what}. Nothing was cached. "
        f"Without network access, download {entry.url} by other means and pass its "
        f"path: kcnn.{entry.model_name}(weights='/path/to/{entry.file_name}'); or set "
        f"{MIRROR_ENV} to a directory or server that holds {entry.file_name}."
    )


def _remove_stale_temporaries(directory, stem):
    """Temporary files of `stem` that a killed process left behind a day ago."""
    for path in glob.glob(os.path.join(glob.escape(directory), f".{glob.escape(stem)}.*")):
        try:
            if time.time() - os.path.getmtime(path) > _STALE_SECONDS:
                os.remove(path)
        except OSError:
            pass  # another process removed or renamed it


def _preprocessing_record(preprocessing):
    if preprocessing is None:
        return imagenet_record()
    if not isinstance(preprocessing, dict) or "crop" not in preprocessing or \
            set(preprocessing) - set(_PREPROCESSING_KEYS):
        raise ValueError(
            f"preprocessing must be a dict with 'crop' and any of 'resize', 'mean', "
            f"'std', 'interpolation', 'scale'; received preprocessing={preprocessing!r}."
        )
    options = {k: v for k, v in preprocessing.items() if k != "scale"}
    result = record(**options)
    if "scale" in preprocessing:
        result["scale"] = float(preprocessing["scale"])
    return result


def _class_names(class_names):
    if class_names is None:
        return _IMAGENET_NAMES
    if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names) \
            or not class_names:
        raise ValueError(
            f"class_names must be a non-empty list of strings (the classifier's "
            f"classes in output order); received class_names={class_names!r}."
        )
    return tuple(class_names)


def _builder_arguments(arguments):
    if arguments is None:
        return {}
    if not isinstance(arguments, dict):
        raise ValueError(
            f"builder_arguments must be a dict of builder arguments; received "
            f"builder_arguments={arguments!r}."
        )
    return dict(arguments)
