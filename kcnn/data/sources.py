"""Where images come from: tensorflow-datasets, image folders, numpy arrays, digits.

    source = kcnn.data.load("cifar10", split="train")
    source.dataset        # tf.data.Dataset of (uint8 image (H, W, C), int64 label)
    source.class_names    # ("airplane", "automobile", ...)

`load` returns a `Source`: one split of an image-classification data set, its
class names and what a pipeline needs to know about it. Its `dataset` is
unbatched and un-augmented, in a fixed order; `kcnn.data.train_pipeline` and
`eval_pipeline` turn a `Source` into batches for a model.
"""

import concurrent.futures
import dataclasses
import difflib
import os
import re
import warnings

import keras  # noqa: F401  (before TensorFlow: see kcnn/__init__.py)
import numpy as np
import tensorflow as tf

from kcnn.data.augment import to_channels

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLITS = ("train", "validation", "test", "all")
VERIFY_MODES = ("decode", "header", None)
# Sub-folders of an image folder that name splits rather than classes.
_SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation",
                  "test": "test"}
# The shuffle buffer for records too big to shuffle all at once (encoded images).
DEFAULT_SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True, eq=False)
class Source:
    """One split of an image-classification source.

    Attributes:
        dataset: (property) a `tf.data.Dataset` of `(image, label)`: uint8
            images of shape (height, width, channels), sizes may vary; int64
            labels indexing `class_names`. Unbatched, un-augmented, fixed order.
        class_names: tuple of str, one per class, in label order.
        channels: the channel count of every image (1 or 3).
        num_examples: examples in the split, or None when unknown.
        name: what was loaded (a dataset name, a folder path, "arrays").
        split: the split loaded.
        records, decode: the split before decoding (file paths, encoded bytes
            or array rows) and the function mapping one record to
            `(image, label)`. Pipelines shuffle records, which are small, and
            decode afterwards.
        shuffle_buffer: a shuffle buffer that mixes this source well: every
            record when they are small (paths, arrays in memory), else 10,000.
        skip_errors: records that fail to decode are dropped, each named in
            a Python warning (image folders not checked by full decoding).
    """

    records: tf.data.Dataset
    decode: object
    class_names: tuple
    channels: int
    num_examples: int | None
    name: str
    split: str
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    skip_errors: bool = False

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def dataset(self):
        ds = self.records.map(self.decode, num_parallel_calls=tf.data.AUTOTUNE)
        if self.skip_errors:
            ds = ds.ignore_errors(log_warning=True)
        return ds

    def __repr__(self):
        return (f"Source(name={self.name!r}, split={self.split!r}, "
                f"num_examples={self.num_examples}, num_classes={self.num_classes}, "
                f"channels={self.channels})")


def load(source, split="train", *, channels=None, validation_split=None, seed=0,
         data_dir=None, download=True, manual_dir=None, shuffle_files=False,
         class_names=None, verify="decode"):
    """Load one split of an image-classification source.

    Args:
        source: one of
            - "digits": scikit-learn's bundled handwritten digits as 28x28x1
              images (offline); "train"/"test" are the stratified 80/20 split
              of `kcnn.data.load_digits` (seed 0).
            - the path of an image folder: one sub-folder per class (class
              names are the sorted folder names), images inside at any depth
              (.jpg, .jpeg, .png, .bmp, .gif, by content). A folder whose
              sub-folders are all split names (train, val or validation, test)
              holds one such class folder per split, e.g. an ImageNet tree of
              train/ and val/. An existing folder wins over a dataset name.
            - a tensorflow-datasets name ("mnist", "fashion_mnist", "cifar10",
              "cifar100", "imagenette", "imagenet2012", ... with config or
              version as tfds spells it); class names from the label feature.
            - a pair of arrays `(x, y)`: x of shape (N, H, W) or (N, H, W, C)
              with C 1 or 3, channels last; y of N integer labels. uint8 and
              integer pixels are taken as 0..255; float pixels as [0, 1] when
              their maximum is at most 1, else as 0..255 (negative or > 255
              values are refused). They are stored as rounded uint8.
        split: "train", "validation", "test" or "all", where the source has
            them (tensorflow-datasets also takes its slicing syntax, e.g.
            "train[:10%]"). A plain folder and arrays are one "train" split.
        channels: 1 or 3 to convert every image to that many channels; None
            keeps the source's (a folder: 1 if every image is grayscale, else 3).
        validation_split: a fraction in (0, 1) held out of "train" as the
            "validation" split, for sources that have no validation split of
            their own; "train" is then the rest. Folders, arrays and digits hold
            out that fraction of each class, chosen at random by `seed`;
            tensorflow-datasets holds out the last examples of its train split.
        seed: the seed of that hold-out.
        data_dir, download, manual_dir, shuffle_files: tensorflow-datasets only:
            where prepared data lives; whether to download and prepare it if it
            is missing; the folder of manually downloaded files (imagenet2012);
            read the files in a seeded random order (use it for big training
            sets, whose files hold consecutive examples).
        class_names: arrays only: the class names (default "0", "1", ...).
        verify: folders only: "decode" (default) decodes every image once up
            front, on all cores (a few ms per ImageNet-sized JPEG: tens of
            minutes for a million files); "header" only opens each file's
            header, walks a PNG's or GIF's chunks and looks for a JPEG's
            end marker (fast: no pixel is decoded); None checks nothing up
            front. Files found unreadable up front are reported by path in a
            warning and skipped; with "header" or None, a file that fails to
            decode later, in tf.data (one broken in the middle of its pixel
            data), is skipped there with a warning naming its path and the
            decoder's reason, at no cost to the files that decode.

    Returns:
        A `Source`; `source.dataset` gives `(uint8 image, int64 label)` pairs.
    """
    if not isinstance(split, str):
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))} (or a "
                         f"tensorflow-datasets split); received split={split!r}.")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None (keep the source's), 1 or 3; "
                         f"received channels={channels!r}.")
    if validation_split is not None and not (
            isinstance(validation_split, float) and 0 < validation_split < 1):
        raise ValueError(f"validation_split must be None or a fraction in (0, 1); "
                         f"received validation_split={validation_split!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; received seed={seed!r}.")
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}; received verify={verify!r}.")
    if class_names is not None and not isinstance(source, (tuple, list)):
        raise ValueError("class_names applies to (x, y) arrays only; a folder or a "
                         f"dataset brings its own. Received class_names={class_names!r} "
                         f"with source={source!r}.")

    if isinstance(source, (tuple, list)):
        return _load_arrays(source, split, channels, validation_split, seed, class_names)
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(
            "source must be 'digits', an image folder path, a tensorflow-datasets "
            f"name or a pair of arrays (x, y); received source={source!r}.")
    source = os.path.expanduser(os.fspath(source))
    if os.path.isdir(source):
        return _load_folder(source, split, channels, validation_split, seed,
                            verify)
    if source == "digits":
        return _load_digits(split, channels, validation_split, seed)
    if os.path.exists(source):
        raise ValueError(f"source={source!r} is a file; an image source is a "
                         "folder of class sub-folders, a dataset name or arrays.")
    return _load_tfds(source, split, channels, validation_split, seed,
                      data_dir, download, manual_dir, shuffle_files)


class OwnValidationSplitError(ValueError):
    """`validation_split` was given for a source with a validation split of its own."""


def load_with_validation(data, *, validation_data=None, validation_split=0.1, seed=0,
                         required=False):
    """The (train, validation) Sources of a training run: one rule for every trainer.

    `kcnn.train`, `kcnn.tune` and `kcnn.transfer.fine_tune` all choose their
    validation data here, so the same arguments validate on the same examples:

    1. `validation_data` given: a `Source` as it is; anything else `load`
       takes, its "validation" split, else its "test" split, else its only one
       (a plain folder or arrays).
    2. else, `data` a `Source`: no validation.
    3. else, `validation_split` 0 or None: no validation.
    4. else `data`'s own "validation" split where it has one (an image folder's
       `val/`, a tfds set's "validation"), else `validation_split` of its train
       split held out (stratified by class, chosen by `seed`).

    With `required=True` (a search scores its trials on validation accuracy) a
    run that would have no validation data raises `ValueError` instead. Training
    data of a single class, and validation data whose classes differ from the
    training data's, are refused with `ValueError`.
    """
    train, val = _train_and_validation(data, validation_data, validation_split, seed, required)
    if train.num_classes < 2:
        raise ValueError(f"data={data!r} holds a single class {list(train.class_names)}; "
                         "training a classifier needs at least two classes.")
    return train, val


def _train_and_validation(data, validation_data, validation_split, seed, required):
    if validation_data is not None:
        train = data if isinstance(data, Source) else load(data, split="train")
        val = _validation_source(validation_data)
        if tuple(val.class_names) != tuple(train.class_names):
            raise ValueError(
                f"validation_data has the classes {list(val.class_names)[:10]} but data has "
                f"{list(train.class_names)[:10]}; validation_data must hold the same classes, "
                "in the same order.")
        return train, val
    if isinstance(data, Source) or not validation_split:
        if required:
            what = ("data is a kcnn.data.Source" if isinstance(data, Source)
                    else f"validation_split={validation_split!r}")
            raise ValueError(f"{what}: give validation_data (a Source, or anything "
                             "kcnn.data.load takes), or a validation_split in (0, 1), to "
                             "score on held-out data.")
        return (data if isinstance(data, Source) else load(data, split="train")), None
    kwargs = dict(validation_split=validation_split, seed=seed)
    try:
        return load(data, split="train", **kwargs), load(data, split="validation", **kwargs)
    except OwnValidationSplitError:
        return load(data, split="train"), load(data, split="validation")


def _validation_source(data):
    if isinstance(data, Source):
        return data
    for split in ("validation", "test"):
        try:
            return load(data, split=split)
        except ValueError:
            pass
    return load(data, split="train")


def _check_split(split, available, source):
    if split not in available:
        raise ValueError(f"split={split!r} is not available for source={source!r}; "
                         f"choose one of {', '.join(map(repr, available))}.")


# ----------------------------------------------------------------------------
# Hold-out of a validation fraction, stratified by class


def _holdout(labels, fraction, seed):
    """A boolean mask of the examples held out: `fraction` of each class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held[members[:int(round(fraction * len(members)))]] = True
    if not held.any() or held.all():
        raise ValueError(f"validation_split={fraction!r} of {len(labels)} examples leaves "
                         "an empty train or validation split; choose another fraction.")
    return held


def _select(split, splits, validation_split, seed, source):
    """Pick `split` out of `splits` {name: (items, labels)}, holding out validation.

    Returns the (items, labels) of the split, as numpy arrays.
    """
    if validation_split is not None:
        if "validation" in splits:
            raise OwnValidationSplitError(f"source={source!r} has a validation split of its own; "
                             f"validation_split={validation_split!r} is for sources "
                             "without one.")
        items, labels = splits["train"]
        held = _holdout(labels, validation_split, seed)
        splits = {**splits, "train": (items[~held], labels[~held]),
                  "validation": (items[held], labels[held])}
    available = [s for s in SPLITS if s in splits] + ["all"]
    _check_split(split, available, source)
    if split == "all":
        parts = [splits[s] for s in SPLITS if s in splits]
        return (np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]))
    return splits[split]


# ----------------------------------------------------------------------------
# numpy arrays and digits


def _as_uint8_images(x):
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        hint = (" (they look channels-first: move the channel axis last)"
                if x.ndim == 4 and x.shape[1] in (1, 3) else "")
        raise ValueError(f"x must have shape (N, H, W) or (N, H, W, C) with C 1 or 3; "
                         f"received shape {x.shape}{hint}.")
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"x must hold numbers; received dtype {x.dtype}.")
    if x.size == 0:
        return x.astype(np.uint8)
    low, high = x.min(), x.max()
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
        raise ValueError(f"x must hold pixels in [0, 1] or 0..255; its values span "
                         f"[{low}, {high}]. Pass raw images, not standardised ones.")
    if np.issubdtype(x.dtype, np.floating) and high <= 1:
        x = x * 255.0
    return np.rint(x).astype(np.uint8)


def _as_labels(y, n):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)
                           or (y.size and np.all(np.mod(y, 1) == 0))):
        raise ValueError(f"y must be a vector of integer class labels; received shape "
                         f"{y.shape} and dtype {y.dtype}.")
    if len(y) != n:
        raise ValueError(f"x and y must have the same length; received {n} images and "
                         f"{len(y)} labels.")
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be >= 0; received a label {y.min()}.")
    return y.astype(np.int64)


def _array_source(images, labels, class_names, channels, name, split):
    records = tf.data.Dataset.from_tensor_slices((images, labels))
    native = images.shape[-1]
    target = channels or native

    def decode(image, label):
        return to_channels(image, target), label

    return Source(records=records, decode=decode, class_names=tuple(class_names),
                  channels=target, num_examples=len(labels), name=name, split=split,
                  shuffle_buffer=max(1, len(labels)))


def _load_arrays(source, split, channels, validation_split, seed, class_names):
    if len(source) != 2:
        raise ValueError(f"arrays must come as a pair (x, y); received {len(source)} items.")
    x = _as_uint8_images(source[0])
    y = _as_labels(source[1], len(x))
    if len(y) == 0:
        raise ValueError("x and y are empty; an array source needs at least one example.")
    num_classes = int(y.max()) + 1
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    elif len(class_names) < num_classes:
        raise ValueError(f"class_names has {len(class_names)} names but the labels go up "
                         f"to {num_classes - 1}; give one name per class.")
    images, labels = _select(split, {"train": (x, y)}, validation_split, seed, "arrays")
    return _array_source(images, labels, [str(c) for c in class_names], channels,
                         "arrays", split)


def _load_digits(split, channels, validation_split, seed):
    from kcnn.data.digits import load_digits

    (x_train, y_train), (x_test, y_test) = load_digits()
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    images, labels = _select(split, splits, validation_split, seed, "digits")
    return _array_source(images, labels, [str(i) for i in range(10)], channels,
                         "digits", split)


# ----------------------------------------------------------------------------
# Image folders


def _subfolders(path):
    return sorted(e.name for e in os.scandir(path)
                  if e.is_dir() and not e.name.startswith("."))


def _image_files(folder):
    files = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [os.path.join(root, n) for n in sorted(names)
                  if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
    return files


def _list_classes(root, class_names):
    """(paths, labels) of every image under root/<class>/ for the given classes."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        folder = os.path.join(root, name)
        if os.path.isdir(folder):
            files = _image_files(folder)
            paths += files
            labels += [label] * len(files)
    return np.array(paths, dtype=object), np.array(labels, np.int64)


def _decode_channels(path):
    """Decode one file as the pipeline will; its channel count, or the error."""
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=0,
                                   expand_animations=False)
        return int(image.shape[-1]), None
    except (tf.errors.OpError, ValueError) as e:
        return None, e.message if hasattr(e, "message") else str(e)


def unreadable_images(paths):
    """`(path, reason)` for each of `paths` that `tf.io.decode_image` cannot decode.

    For an explicit list of files (what `predict` and `explain` are given),
    where a bad file is an error that names it rather than a skip."""
    errors = ((p, _decode_channels(p)[1]) for p in paths)
    return [(p, _reason(e) or "unreadable") for p, e in errors if e is not None]


def _header_channels(path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode = image.mode
            # Walks the chunks without decoding pixels: a truncated PNG or GIF is
            # caught (and named) here rather than dropped nameless in tf.data.
            image.verify()
            if image.format == "JPEG" and _jpeg_is_cut_short(path):
                return None, "a JPEG cut short (no end-of-image marker)"
    except Exception as e:  # noqa: BLE001  PIL's verify raises many types for bad files
        return None, str(e) or type(e).__name__
    return (1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 3), None


def _decode_or_skip(path):
    """Decode the file at `path` in the tf.data graph; name it if it cannot be.

    A file that fails to decode inside tf.data is dropped (`ignore_errors`) with
    TensorFlow's message, which has no file name. Here the read and the decode
    run in a one-element dataset that drops the failure itself, so a failure
    becomes an empty result instead of an error: then (and only then) a Python
    function warns with the path and the decoder's reason, and an assertion
    fails the element for the pipeline to drop. Files that decode pay no Python
    call and no second read; `verify="decode"` is not needed to name bad files.
    """
    attempt = tf.data.Dataset.from_tensors(path).map(
        lambda p: (tf.io.decode_image(tf.io.read_file(p), channels=0,
                                      expand_animations=False), True)).ignore_errors()
    failed = tf.data.Dataset.from_tensors((tf.zeros([0, 0, 0], tf.uint8), False))
    image, decoded = attempt.concatenate(failed).take(1).get_single_element()
    ok = tf.cond(decoded, lambda: True,
                 lambda: tf.py_function(_report_skipped, [path], tf.bool))
    check = tf.debugging.Assert(ok, ["kcnn: skipping the unreadable image file", path])
    with tf.control_dependencies([check]):
        return tf.identity(image)


def _report_skipped(path):
    """Warn that the file at `path` (a string tensor) is skipped, and why; False."""
    path = path.numpy().decode()
    _, error = _decode_channels(path)  # again, eagerly, for the decoder's reason
    warnings.warn(f"Skipping an unreadable image file: {path}: "
                  f"{_reason(error) or 'it could not be read'}", stacklevel=1)
    return False


def _reason(error):
    """The last line of a decoder's message, without TensorFlow's node and op tags."""
    lines = (error or "").strip().splitlines()
    line = lines[-1] if lines else ""
    line = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line)
    return re.sub(r"\s*\[Op:\w+\].*$", "", line)[:200]


def _jpeg_is_cut_short(path):
    """True for a JPEG file with no end-of-image marker (FF D9).

    The marker usually ends the file; data appended after it (a motion photo's
    video) is allowed, so the whole file is searched when the tail lacks it.
    In entropy-coded data 0xFF is always escaped, so FF D9 occurs only as a
    marker (or inside an embedded thumbnail: then the cut goes unnoticed here
    and the decoder reports it later).
    """
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4096))
        if b"\xff\xd9" in f.read():
            return False
        f.seek(0)
        return b"\xff\xd9" not in f.read()


def _check_files(paths, verify, root):
    """Channel counts of the readable files; warns about the others by path."""
    check = _decode_channels if verify == "decode" else _header_channels
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(check, paths, chunksize=64))
    bad = [(p, err) for p, (c, err) in zip(paths, results) if c is None]
    if bad:
        shown = "\n".join(f"  {p}: {_reason(err)}" for p, err in bad[:50])
        more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
        warnings.warn(f"Skipping {len(bad)} unreadable image file(s) under {root}:\n"
                      f"{shown}{more}", stacklevel=4)
    return np.array([c or 0 for c, _ in results])


def _load_folder(root, split, channels, validation_split, seed, verify):
    subfolders = _subfolders(root)
    if not subfolders:
        raise ValueError(
            f"source={root!r} has no class sub-folders; an image folder holds one "
            "sub-folder per class with the images inside (root/<class>/<image>.jpg).")
    if all(f.lower() in _SPLIT_FOLDERS for f in subfolders):
        split_roots = {_SPLIT_FOLDERS[f.lower()]: os.path.join(root, f) for f in subfolders}
        class_names = sorted(set().union(*(_subfolders(p) for p in split_roots.values())))
        if not class_names:
            raise ValueError(f"source={root!r}: the split folders {subfolders} hold no "
                             "class sub-folders (root/<split>/<class>/<image>.jpg).")
    else:
        split_roots = {"train": root}
        class_names = subfolders
    splits = {s: _list_classes(r, class_names) for s, r in split_roots.items()}
    if validation_split is not None and "train" not in splits:
        raise ValueError(f"validation_split needs a train split; source={root!r} has "
                         f"{sorted(splits)}.")
    paths, labels = _select(split, splits, validation_split, seed, root)
    if len(paths) == 0:
        raise ValueError(
            f"source={root!r} split={split!r} holds no images; images are files ending "
            f"in {', '.join(IMAGE_EXTENSIONS)} inside the class folders {class_names[:10]}.")

    if verify is not None:
        counts = _check_files(list(paths), verify, root)
        keep = counts > 0
        if not keep.any():
            raise ValueError(f"source={root!r} split={split!r}: none of its {len(paths)} "
                             "image files could be read.")
        paths, labels, counts = paths[keep], labels[keep], counts[keep]
        native = 1 if np.all(counts <= 2) else 3
    else:
        native = 3
    target = channels or native

    def decode(path, label):
        if verify == "decode":  # every file decoded once up front
            image = tf.io.decode_image(tf.io.read_file(path), channels=0,
                                       expand_animations=False)
        else:
            image = _decode_or_skip(path)
        return to_channels(image, target), label

    records = tf.data.Dataset.from_tensor_slices((paths.astype(str), labels))
    return Source(records=records, decode=decode, class_names=tuple(class_names),
                  channels=target, num_examples=len(paths), name=root, split=split,
                  shuffle_buffer=max(1, len(paths)), skip_errors=verify != "decode")


# ----------------------------------------------------------------------------
# tensorflow-datasets


def _tfds_builder(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        base = name.split(":")[0].split("/")[0]
        close = difflib.get_close_matches(base, tfds.list_builders(), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"source={name!r} is not an existing folder, 'digits', an (x, y) pair or a "
            f"tensorflow-datasets name.{hint}") from None
    except (ValueError, AssertionError) as e:  # a malformed name, config or version
        reason = str(e).strip().splitlines()[0]
        raise ValueError(f"source={name!r} is not an existing folder, and "
                         f"tensorflow-datasets cannot read it as a name: {reason}") from e


def _load_tfds(name, split, channels, validation_split, seed, data_dir, download,
               manual_dir, shuffle_files):
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, data_dir)
    info = builder.info
    image_key, label_key = info.supervised_keys or ("image", "label")
    features = info.features
    image_feature = features[image_key] if image_key in features else None
    label_feature = features[label_key] if label_key in features else None
    if not (isinstance(image_feature, tfds.features.Image)
            and isinstance(label_feature, tfds.features.ClassLabel)):
        raise ValueError(f"source={name!r} is not an image-classification dataset "
                         f"(an image and a class label); its features are {features}.")
    if image_feature.np_dtype != np.uint8:
        raise ValueError(f"source={name!r} has {image_feature.np_dtype} images; "
                         "kcnn reads uint8 images.")

    if download:
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        try:
            builder.download_and_prepare(download_config=config)
        except AssertionError as e:  # tfds reports a missing manual_dir this way
            raise ValueError(f"source={name!r}: {e}") from e

    splits = info.splits  # empty until the dataset is prepared (or when mocked)
    if validation_split is not None:
        if "validation" in splits:
            raise OwnValidationSplitError(f"source={name!r} has a validation split of its own; "
                             f"validation_split={validation_split!r} is for sources "
                             "without one.")
        if "train" not in splits:
            raise ValueError(f"validation_split needs the number of examples of "
                             f"{name!r}'s train split; prepare the dataset first.")
        keep = int(round(splits["train"].num_examples * (1 - validation_split)))
        if split == "validation":
            split = f"train[{keep}:]"
        elif split == "train":
            split = f"train[:{keep}]"
    num_examples = None
    if splits:
        try:
            num_examples = splits[split].num_examples
        except (KeyError, ValueError):
            raise ValueError(
                f"split={split!r} is not available for source={name!r}; choose one of "
                f"{', '.join(map(repr, splits))} (or tfds slicing such as "
                "'train[:10%]').") from None

    read_config = tfds.ReadConfig(shuffle_seed=seed)
    try:
        records = builder.as_dataset(split=split, shuffle_files=shuffle_files,
                                     read_config=read_config,
                                     decoders={image_key: tfds.decode.SkipDecoding()})
    except AssertionError as e:  # not prepared, and download=False
        raise ValueError(f"source={name!r}: {e}") from e
    records = records.map(lambda ex: (ex[image_key], ex[label_key]))
    native = image_feature.shape[-1] or 3
    target = channels or native

    def decode(encoded, label):
        image = image_feature.decode_example(encoded)
        return to_channels(image, target), tf.cast(label, tf.int64)

    return Source(records=records, decode=decode, class_names=tuple(label_feature.names),
                  channels=target, num_examples=num_examples, name=name, split=split,
                  shuffle_buffer=min(num_examples or DEFAULT_SHUFFLE_BUFFER,
                                     DEFAULT_SHUFFLE_BUFFER))
