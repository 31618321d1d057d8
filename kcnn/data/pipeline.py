"""From a source to a model's batches: decode, resize, augment, normalise, batch.

    source = kcnn.data.load("imagenette", split="train")
    train = kcnn.data.train_pipeline(source, model.metadata["preprocessing"],
                                     batch_size=64, augment=kcnn.data.Augment(), seed=0)
    model.fit(train, epochs=10)   # any backend: Keras reads tf.data on all three

Both pipelines give `(images, labels)` batches: float32 images in the layout of
`keras.config.image_data_format()` (read when the pipeline is built), and int64
labels, or float32 one-hot rows with `one_hot=True`. Images are prepared as the
preprocessing record says (`model.metadata["preprocessing"]`, see
`kcnn.models._common.preprocessing`): the shorter side resized to `resize`
(scaled up further if a side would be shorter than the crop; the whole image to
`crop` when `resize` is None), a `crop` patch
taken (random for training, central for evaluation), converted to the model's
channel count, then `(pixels * scale - mean) / std`. Training may crop at
another size than evaluation (`crop_size`, e.g. torchvision's 176 against 224),
and with `Augment(resized_crop=...)` it cuts torchvision's random resized crop
from the original decoded image instead (as torchvision's training presets do:
the record's `resize` is then evaluation's alone). Examples stay uint8 up to
batching (a cache holds uint8). The per-example augmentations (crops, flips,
affine maps, AutoAugment / RandAugment / TrivialAugmentWide, colour jitter,
grayscale) run on them, in that order; the PCA colour noise,
normalisation, the fill of random erasing (drawn per example, in normalised
units as torchvision erases after `Normalize`), and MixUp/CutMix run per batch.
With `class_weight`, training batches are `(images, labels, sample_weights)`.

`preview` writes a PNG grid of augmented training images; `class_counts`
counts a source's labels (for `class_weight="balanced"`).

Repeatability: the training pipeline draws every random number (the shuffle
and each example's augmentation) from stateless ops keyed by `seed`, the pass
over the data and the example's place in it. Two pipelines built with the same
seed give identical batches, epoch after epoch; each epoch differs from the one
before; another seed gives other batches. A pass is keyed by the number of
iterators made so far, or, with an `EpochOrder` (as `kcnn.train` uses), by the
epoch number alone: then the order is the same whatever number of iterators
Keras makes (it makes more under a distribution strategy) and a run resumed at
epoch k sees epoch k's order.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from kcnn import checks
from kcnn.data import augment as ops
from kcnn.data import autoaugment
from kcnn.data.augment import Augment
from kcnn.data.sources import DEFAULT_SHUFFLE_BUFFER, Source



class EpochOrder(keras.callbacks.Callback):
    """The epoch a training pipeline draws its order and augmentation from.

    Pass it to `train_pipeline(..., epoch_order=...)` and to `fit(callbacks=...)`:
    it holds the number of the epoch about to start (set at each epoch's
    beginning), and each pass over the pipeline is shuffled and augmented from
    `(seed, epoch)`, however many iterators the trainer makes:

        order = kcnn.data.pipeline.EpochOrder()
        train = kcnn.data.train_pipeline(source, record, batch_size=64, epoch_order=order)
        model.fit(train, epochs=10, callbacks=[order])
    """

    def __init__(self):
        super().__init__()
        # A TensorFlow variable on every backend: the tf.data graph reads it when
        # each pass begins. Made outside any distribution strategy's scope, it
        # stays one plain host variable.
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_order")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def train_pipeline(data, preprocessing, *, batch_size, augment=Augment(), seed=0,
                   shuffle_buffer=None, cache=False, drop_remainder=True, one_hot=False,
                   num_classes=None, channels=None, class_weight=None, epoch_order=None,
                   crop_size=None):
    """Shuffled, augmented training batches.

    Args:
        data: a `Source` (from `kcnn.data.load`) or a `tf.data.Dataset` of
            `(uint8 image (H, W, C), integer label)` pairs.
        preprocessing: the model's preprocessing record,
            `model.metadata["preprocessing"]`: `crop` (the input size), `resize`
            (shorter side before cropping, or None), `interpolation`, `scale`,
            per-channel `mean` and `std`.
        batch_size: the GLOBAL batch size (under a distribution strategy, the
            sum over replicas).
        augment: an `Augment` (crop or resized crop, flips, affine maps, a
            policy, colour jitter, grayscale, PCA lighting, erasing, MixUp,
            CutMix), or None for none (centre crop only).
        seed: an integer; the same seed gives the same batches.
        shuffle_buffer: examples in the shuffle buffer; None: the source's
            suggestion (all of a folder's or arrays' records, else 10,000).
        cache: False; True to keep the decoded, resized images in memory; or a
            file path prefix to cache them on disk. Augmentation always runs
            after the cache, so each epoch sees new crops. With
            `Augment(resized_crop=...)` the cache holds the decoded images at
            their own size (the crop is cut from those).
        drop_remainder: drop the last partial batch (fixed shapes: JAX compiles
            once, distribution strategies split evenly).
        one_hot: float32 one-hot labels of `num_classes` (label smoothing,
            focal loss); MixUp and CutMix need it.
        num_classes: for one_hot; default: the source's class count.
        channels: the model's channel count; default: the record's, len(mean).
        class_weight: None, or a weight per class (a dict {class: weight},
            missing classes 1.0, or a sequence): batches then carry per-example
            weights, the weight of the label (for mixed labels, the labels'
            weights mixed in the same proportion), which `fit` applies to the loss.
        epoch_order: None: each pass over the dataset (each iterator made)
            is the next epoch; or an `EpochOrder`, also given to `fit` as a
            callback: each pass is the epoch it holds, so the order and the
            augmentation depend on (seed, epoch) alone (the same on one device
            and on several replicas, and again after resuming at that epoch).
        crop_size: the training crop, an int or (height, width); None: the
            record's `crop`. torchvision's newer weights train at 176 and
            evaluate at 224 (FixRes, Touvron et al. 2019: random resized crops
            make objects look larger than evaluation's centre crops, so a
            smaller training crop evens out what the model sees); evaluation
            (`eval_pipeline`) keeps the record's resize and crop. Without
            `resized_crop`, the image is still resized as the record says
            (scaled up if the crop would not fit) and a `crop_size` patch taken.

    Returns:
        A `tf.data.Dataset` of (images, labels) batches, or (images, labels,
        sample_weights) with `class_weight`, prefetched.
    """
    augment = Augment(crop=False, flip=False) if augment is None else augment
    if not isinstance(augment, Augment):
        raise ValueError(f"augment must be a kcnn.data.Augment or None; received "
                         f"augment={augment!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; received seed={seed!r}.")
    _check_batch_size(batch_size)
    records, decode, skip_errors, suggested, source_classes = _unpack(data)
    record, channels = check_preprocessing(preprocessing, channels)
    record = _training_record(record, crop_size)
    rgb_only = augment.rgb_only()
    if rgb_only and channels != 3:
        settings = ", ".join(f"{name}={getattr(augment, name)!r}" for name in rgb_only)
        raise ValueError(f"Augment.{rgb_only[0]} works on RGB images; this pipeline makes "
                         f"{channels}-channel images. Turn off {settings}.")
    if augment.mixes and not one_hot:
        raise ValueError(f"Augment mixup={augment.mixup} / cutmix={augment.cutmix} mix "
                         f"the labels, which needs one_hot=True.")
    num_classes = _check_labels(one_hot, num_classes, source_classes)
    weights = _class_weight_vector(class_weight, num_classes or source_classes)
    if shuffle_buffer is None:
        shuffle_buffer = suggested or DEFAULT_SHUFFLE_BUFFER
    else:
        checks.positive_int("shuffle_buffer", shuffle_buffer)
    _check_cache(cache)
    if epoch_order is not None and not isinstance(epoch_order, EpochOrder):
        raise ValueError(f"epoch_order must be None or a kcnn.data.pipeline.EpochOrder; "
                         f"received epoch_order={epoch_order!r}.")

    policy = _policy(augment)

    def prepare(*record_parts):
        image, label = decode(*record_parts)
        if not augment.resized_crop:  # which cuts from the image as decoded
            image = _resize(image, record)
        return image, tf.cast(label, tf.int64)

    def random_part(example, key):
        image, label = example
        seeds = _seeds(seed, key)
        if augment.resized_crop:
            image = ops.random_resized_crop(image, seeds[0], record["crop"],
                                            augment.resized_crop, augment.resized_crop_ratio,
                                            record["interpolation"])
        elif augment.crop:
            image = ops.random_crop(image, record["crop"], seeds[0])
        else:
            image = ops.center_crop(image, record["crop"])
        if augment.flip:
            image = ops.random_flip(image, seeds[1])
        if augment.vertical_flip:
            image = ops.random_vertical_flip(image, seeds[4], augment.vertical_flip)
        if augment.shift:
            image = ops.random_shift(image, augment.shift, seeds[2])
        if augment.affine:
            image = ops.random_affine(image, seeds[5], augment.rotation, augment.translate,
                                      augment.scale, augment.shear, augment.interpolation)
        image = ops.to_channels(image, channels)
        if policy is not None:
            image = policy(image, seeds[11])
        if augment.color_jitter:
            image = ops.color_jitter(image, seeds[6], augment.brightness, augment.contrast,
                                     augment.saturation, augment.hue)
        if augment.grayscale:
            image = ops.random_grayscale(image, seeds[7], augment.grayscale)
        example = {"image": image, "label": label, "key": key}
        if augment.pca_lighting:
            example["lighting"] = ops.pca_lighting_offset(seeds[3], augment.pca_lighting)
        if augment.erasing:
            example["erase"] = ops.erasing_box(
                *record["crop"], seeds[8], augment.erasing, augment.erasing_scale,
                augment.erasing_ratio)
        return example

    def decoded(ds):
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.ignore_errors(log_warning=True) if skip_errors else ds

    if cache:  # decoded once; every pass shuffles the cached images
        cached = decoded(records).cache("" if cache is True else str(cache))

    def one_pass(pass_key):
        """One epoch: shuffled and keyed from (seed, pass_key) alone."""
        shuffle_seed = _derived(tf.constant(seed, tf.int64), pass_key)
        if cache:
            ds = _shuffled(cached, shuffle_buffer, shuffle_seed)
        else:  # records (paths, encoded bytes) are cheaper to shuffle than images
            ds = decoded(_shuffled(records, shuffle_buffer, shuffle_seed))
        return ds.enumerate().map(lambda i, example: (example, _derived(pass_key, i)))

    if epoch_order is None:  # a new key for each iterator made, drawn from the seed
        passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    else:  # the epoch, read when the iterator starts (after on_epoch_begin)
        passes = tf.data.Dataset.from_tensors(0).map(
            lambda _: epoch_order.epoch.read_value())
    ds = passes.flat_map(one_pass)
    if not skip_errors:  # flat_map hides the length, which Keras reads for its steps
        known = records.cardinality()
        if known >= 0:
            ds = ds.apply(tf.data.experimental.assert_cardinality(known))
    ds = ds.map(random_part, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(ds, batch_size, drop_remainder, record, num_classes if one_hot else None,
                   augment=augment, seed=seed, weights=weights)


def eval_pipeline(data, preprocessing, *, batch_size, ten_crop=False, cache=False,
                  drop_remainder=False, one_hot=False, num_classes=None, channels=None):
    """Evaluation batches in the source's order: resize and centre crop.

    With `ten_crop=True` each example gives the paper's 10 crops
    (`kcnn.data.augment.ten_crop`): images of shape (batch, 10, H, W, C), or
    (batch, 10, C, H, W) channels-first; average the model's predictions over
    axis 1. `cache` caches the finished examples (True: memory, or a path).
    The other arguments are those of `train_pipeline`; the last partial batch
    is kept by default.
    """
    _check_batch_size(batch_size)
    records, decode, skip_errors, _, source_classes = _unpack(data)
    record, channels = check_preprocessing(preprocessing, channels)
    num_classes = _check_labels(one_hot, num_classes, source_classes)
    _check_cache(cache)

    def prepare(*record_parts):
        image, label = decode(*record_parts)
        if ten_crop:
            image = ops.to_channels(ops.ten_crop(_resize(image, record), record["crop"]),
                                    channels)
        else:
            image = eval_image(image, record, channels)
        return {"image": image, "label": tf.cast(label, tf.int64)}

    ds = records.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if skip_errors:
        ds = ds.ignore_errors(log_warning=True)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
    return _finish(ds, batch_size, drop_remainder, record, num_classes if one_hot else None)


def mean_std(data, *, max_examples=None):
    """Per-channel mean and standard deviation of a source's pixels, on [0, 1].

    Over every pixel of every image (of the first `max_examples`, in an order
    shuffled with a fixed seed, when given), in the source's own channels and
    sizes. The values go straight into a preprocessing record:
    `{**record, "mean": mean, "std": std}` standardises per data set.

    Returns:
        `(mean, std)`, two lists of floats, one entry per channel.
    """
    records, decode, skip_errors, suggested, _ = _unpack(data)
    if max_examples is not None:
        checks.positive_int("max_examples", max_examples, optional=True)
        records = records.shuffle(suggested or DEFAULT_SHUFFLE_BUFFER, seed=0)
        records = records.take(max_examples)
    ds = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if skip_errors:
        ds = ds.ignore_errors(log_warning=True)

    def moments(image, label):
        x = tf.cast(image, tf.float64)
        pixels = tf.reshape(x, [-1, tf.shape(x)[-1]])
        return (tf.reduce_sum(pixels, 0), tf.reduce_sum(pixels * pixels, 0),
                tf.cast(tf.shape(pixels)[0], tf.float64))

    channels = ds.element_spec[0].shape[-1]
    zeros = tf.zeros([channels], tf.float64)
    total, total_sq, count = ds.map(moments).reduce(
        (zeros, zeros, tf.constant(0.0, tf.float64)),
        lambda acc, m: (acc[0] + m[0], acc[1] + m[1], acc[2] + m[2]))
    if float(count) == 0:
        raise ValueError("mean_std: the data holds no images.")
    mean = total / count
    std = tf.sqrt(tf.maximum(total_sq / count - mean * mean, 0.0))
    return ([float(v) / 255.0 for v in mean.numpy()],
            [float(v) / 255.0 for v in std.numpy()])


def class_counts(data):
    """The number of examples of each class in a source: an int64 numpy vector.

    Reads every label once (without decoding images when the source's records
    hold the label next to a file path, encoded bytes or an array row, as
    every `Source` from `kcnn.data.load` does). The counts are what
    `class_weight="balanced"` is computed from.
    """
    records, decode, skip_errors, _, num_classes = _unpack(data)
    spec = records.element_spec
    if isinstance(spec, tuple) and len(spec) == 2 and spec[1].shape.rank == 0 \
            and spec[1].dtype.is_integer:
        labels = records.map(lambda *parts: parts[-1])
    else:
        labels = records.map(decode).map(lambda image, label: label)
        if skip_errors:
            labels = labels.ignore_errors()
    counts = np.zeros(num_classes or 0, np.int64)
    for chunk in labels.batch(65536).as_numpy_iterator():
        found = np.bincount(chunk.astype(np.int64), minlength=len(counts))
        if len(found) > len(counts):
            counts = np.pad(counts, (0, len(found) - len(counts)))
        counts += found
    return counts


def preview(data, path, *, augment=Augment(), preprocessing=None, n=16, seed=0,
            channels=None):
    """Write a PNG grid of `n` training images as the model will see them.

    The images go through the training pipeline with `augment` (crops, flips,
    affine maps, colour, erasing, MixUp/CutMix, everything) and are brought
    back from the model's normalised units to pixels. Without `preprocessing`
    (a model's `metadata["preprocessing"]`), images are cropped at the first
    image's size with mean 0 and std 1, so an erased box shows black.

    Each cell is the image scaled up by a whole factor to at least 96 pixels
    on its longer side (nearest neighbour), with 2-pixel gaps, in a grid of
    ceil(sqrt(n)) columns.

    Args:
        data: a `Source` or a `tf.data.Dataset` of (uint8 image, label), or
            anything `kcnn.data.load` takes (read at its "train" split).
        path: the PNG file to write.
        augment: an `Augment`, or what `kcnn.data.augment.resolve` takes
            (e.g. "rotation=15 brightness=0.4"), on top of `Augment()`.

    Returns:
        The grid, a uint8 array (height, width, 3), as written to `path`.
    """
    from PIL import Image

    from kcnn.data.sources import load

    checks.positive_int("n", n)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).lower().endswith(".png"):
        raise ValueError(f"path must be a file name ending in .png; received path={path!r}.")
    if not isinstance(data, (Source, tf.data.Dataset)):
        data = load(data, split="train")
    augment = ops.resolve(augment)
    records, decode, _, _, num_classes = _unpack(data)
    if preprocessing is None:
        image, _ = next(iter(records.take(1).map(decode)))
        preprocessing = {"crop": tuple(int(v) for v in image.shape[:2]), "resize": None,
                         "mean": [0.0], "std": [1.0], "scale": 1.0 / 255.0}
        channels = channels or int(image.shape[-1])
    record, channels = check_preprocessing(preprocessing, channels)
    # The labels are not shown; a plain dataset's may not say how many classes.
    ds = train_pipeline(data, record, batch_size=n, augment=augment, seed=seed,
                        drop_remainder=False, one_hot=augment.mixes, channels=channels,
                        num_classes=num_classes or 1)
    x = next(iter(ds))[0].numpy()
    if keras.config.image_data_format() == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    pixels = (x * np.array(record["std"]) + np.array(record["mean"])) / record["scale"]
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    grid = _grid(images)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)
    return grid


def _grid(images, gap=2, cell=96):
    count, height, width, _ = images.shape
    zoom = max(1, math.ceil(cell / max(height, width)))
    images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
    height, width = height * zoom, width * zoom
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    grid = np.full((rows * (height + gap) + gap, cols * (width + gap) + gap, 3), 255, np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // cols) * (height + gap), gap + (i % cols) * (width + gap)
        grid[top:top + height, left:left + width] = image
    return grid


# ----------------------------------------------------------------------------


def _unpack(data):
    """(records, decode, skip_errors, shuffle_buffer, num_classes) of the data."""
    if isinstance(data, Source):
        return (data.records, data.decode, data.skip_errors, data.shuffle_buffer,
                data.num_classes)
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2
                and spec[0].shape.rank == 3 and spec[1].shape.rank == 0):
            raise ValueError(f"data must yield (image (H, W, C), label) pairs, unbatched; "
                             f"its elements are {spec}.")
        cardinality = int(data.cardinality())
        suggested = cardinality if 0 < cardinality <= DEFAULT_SHUFFLE_BUFFER else None
        return data, lambda image, label: (image, label), False, suggested, None
    raise ValueError(f"data must be a kcnn.data.Source (from kcnn.data.load) or a "
                     f"tf.data.Dataset; received a {type(data).__name__}.")


def _check_batch_size(batch_size):
    checks.positive_int("batch_size", batch_size)


def _check_cache(cache):
    if not isinstance(cache, (bool, str)) and cache is not None \
            and not hasattr(cache, "__fspath__"):
        raise ValueError(f"cache must be False, True (memory) or a file path; received "
                         f"cache={cache!r}.")


def _check_labels(one_hot, num_classes, source_classes):
    if not one_hot:
        return None
    num_classes = num_classes or source_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"one_hot=True needs num_classes, a positive integer (a Source "
                         f"brings its own); received num_classes={num_classes!r}.")
    if source_classes and num_classes < source_classes:
        raise ValueError(f"num_classes={num_classes} is fewer than the data's "
                         f"{source_classes} classes: one-hot labels need one column for each.")
    return num_classes


def check_preprocessing(preprocessing, channels=None):
    """A model's preprocessing record, checked: `(record, channels)`.

    The record comes back with crop as (h, w) and mean/std per channel;
    `channels` None takes the record's. A ValueError names what is wrong.
    """
    if not isinstance(preprocessing, dict) or "crop" not in preprocessing:
        raise ValueError(
            "preprocessing must be a model's preprocessing record (a dict with crop, "
            "resize, mean, std, scale, interpolation: model.metadata['preprocessing']); "
            f"received preprocessing={preprocessing!r}.")
    record = dict(preprocessing)
    try:
        crop = ops.size_pair(record["crop"])
    except (TypeError, ValueError):
        crop = None
    if crop is None or min(crop) < 1:
        raise ValueError(f"preprocessing['crop'] must be a positive size or (height, "
                         f"width); received {record['crop']!r}.")
    resize = record.get("resize")
    if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int)
                               or resize < min(crop)):
        raise ValueError(f"preprocessing['resize'] (the shorter side before cropping) "
                         f"must be None or an integer >= the crop {crop}; received "
                         f"{resize!r}.")
    interpolation = record.get("interpolation", "bilinear")
    if interpolation not in ops.INTERPOLATIONS:
        raise ValueError(f"preprocessing['interpolation'] must be one of "
                         f"{ops.INTERPOLATIONS}; received {interpolation!r}.")
    mean = list(record.get("mean", [0.0]))
    std = list(record.get("std", [1.0]))
    if channels is None:
        channels = max(len(mean), len(std)) if max(len(mean), len(std)) > 1 else 1
    if channels not in (1, 3):
        raise ValueError(f"channels must be None (the record's), 1 or 3; received "
                         f"channels={channels!r}.")
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise ValueError(f"preprocessing[{key!r}] must have 1 or {channels} values; "
                             f"received {values!r}.")
    if min(std) <= 0:
        raise ValueError(f"preprocessing['std'] must be positive; received {std!r}.")
    record.update(crop=crop, resize=resize, interpolation=interpolation,
                  scale=float(record.get("scale", 1.0 / 255.0)),
                  mean=[float(m) for m in mean] * (channels // len(mean)),
                  std=[float(s) for s in std] * (channels // len(std)))
    return record, channels


def eval_image(image, record, channels):
    """One decoded uint8 (h, w, c) image as evaluation and serving see it.

    Resized (the shorter side to the record's `resize`, or straight to its
    crop), center-cropped to the crop and given `channels`; still uint8.
    `record` and `channels` as `check_preprocessing` returns them.
    """
    image = ops.center_crop(_resize(image, record), record["crop"])
    return ops.to_channels(image, channels)


def _resize(image, record):
    if record["resize"] is None:
        return ops.resize(image, record["crop"], record["interpolation"])
    return ops.resize_shorter(image, record["resize"], record["interpolation"],
                              at_least=record["crop"])


# Per example, seeds 0-8 and 11 go to the augmentations in `random_part`;
# seeds 9 and 10 of a batch's first example draw that batch's erasing noise
# and mix. (The first 11 are the same whatever the count.)
_SEEDS = 12


def _training_record(record, crop_size):
    """The checked record with the training crop `crop_size` (None: its own)."""
    if crop_size is None:
        return record
    sides = tuple(crop_size) if isinstance(crop_size, (list, tuple)) else (crop_size,) * 2
    if len(sides) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                  and v >= 1 for v in sides):
        raise ValueError(f"crop_size must be None (the preprocessing record's crop), a "
                         f"positive integer or (height, width); received "
                         f"crop_size={crop_size!r}.")
    return {**record, "crop": (int(sides[0]), int(sides[1]))}


def _policy(augment):
    """The `Augment`'s policy as a function (uint8 image, seed) -> image, or None."""
    if augment.policy is None:
        return None
    options = {"interpolation": augment.interpolation}  # fill: torchvision's None
    if augment.autoaugment:
        return lambda image, seed: autoaugment.auto_augment(
            image, seed, policy=augment.autoaugment, **options)
    if augment.randaugment:
        num_ops, magnitude, bins = augment.randaugment
        return lambda image, seed: autoaugment.rand_augment(
            image, seed, num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=bins,
            **options)
    return lambda image, seed: autoaugment.trivial_augment_wide(image, seed, **options)


def _seeds(seed, key):
    return tf.random.split(tf.stack([tf.constant(seed, tf.int64), key]), _SEEDS)


def _shuffled(ds, buffer_size, seed):
    """`ds` shuffled once with a seed tensor, inside a tf.data function.

    tf.data pairs an op seed with the graph seed and, when the graph seed is 0
    (`keras.utils.set_random_seed(0)`), compares the pair to (0, 0) in Python,
    which a seed tensor cannot answer. Fixing this function graph's seed (its
    own; the global seed is untouched) avoids that, and leaves the order a
    function of `seed` alone.
    """
    tf.random.set_seed(1)
    return ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=False)


def _derived(a, b):
    """A pseudo-random int64 drawn statelessly from the pair (a, b)."""
    return tf.random.stateless_uniform(
        [], seed=tf.stack([tf.cast(a, tf.int64), tf.cast(b, tf.int64)]), minval=None,
        maxval=None, dtype=tf.int64)


def _finish(ds, batch_size, drop_remainder, record, num_classes, augment=None, seed=0,
            weights=None):
    """Batch the uint8 crops, then per batch (faster than per example): add the
    PCA lighting offsets, normalise, erase, one-hot and mix, move channels
    first if Keras wants it, attach sample weights; prefetch."""
    channels_first = keras.config.image_data_format() == "channels_first"
    augment = augment or Augment(crop=False, flip=False)

    def to_model(batch):
        images, labels = batch["image"], batch["label"]
        if "lighting" in batch:  # in [0, 1], as AlexNet defines it
            x = tf.cast(images, tf.float32) / 255.0 + batch["lighting"][:, None, None, :]
            images = tf.clip_by_value(x, 0.0, 1.0) * 255.0
        x = ops.normalize(images, record)
        batch_seeds = _seeds(seed, batch["key"][0]) if "key" in batch else None
        if "erase" in batch:
            x = ops.erase(x, batch["erase"], augment.erasing_value, batch_seeds[9])
        if num_classes is not None:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        if augment.mixes:
            x, labels = ops.mix(x, labels, batch_seeds[10], augment.mixup, augment.cutmix)
        if channels_first:  # (B, H, W, C) -> (B, C, H, W); ten crops keep axis 1
            perm = [0, 3, 1, 2] if x.shape.rank == 4 else [0, 1, 4, 2, 3]
            x = tf.transpose(x, perm)
        if weights is None:
            return x, labels
        w = tf.constant(weights, tf.float32)
        if labels.shape.rank == 2:  # one-hot or mixed: the labels' weights, mixed
            return x, labels, tf.linalg.matvec(labels, w)
        return x, labels, tf.gather(w, labels)

    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _class_weight_vector(class_weight, num_classes):
    """A float list of one weight per class, from a dict or a sequence; None stays None."""
    if class_weight is None:
        return None
    if isinstance(class_weight, dict):
        keys = list(class_weight)
        if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0
                   for k in keys):
            raise ValueError(f"class_weight keys must be class indices >= 0; received "
                             f"class_weight={class_weight!r}.")
        size = max(num_classes or 0, max(keys, default=-1) + 1)
        vector = [float(class_weight.get(i, 1.0)) for i in range(size)]
    else:
        try:
            vector = [float(w) for w in class_weight]
        except (TypeError, ValueError):
            vector = None
        if vector is None:
            raise ValueError(f"class_weight must be None, a dict {{class: weight}} or one "
                             f"weight per class; received class_weight={class_weight!r}.")
    if num_classes and len(vector) > num_classes:
        raise ValueError(f"class_weight names class {len(vector) - 1}, but there are "
                         f"{num_classes} classes.")
    if not vector or any(not np.isfinite(w) or w < 0 for w in vector):
        raise ValueError(f"class_weight must hold finite weights >= 0; received "
                         f"class_weight={class_weight!r}.")
    if num_classes:
        vector += [1.0] * (num_classes - len(vector))
    return vector
