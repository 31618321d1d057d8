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
channel count, then `(pixels * scale - mean) / std`. Examples stay uint8 up to
batching (a cache holds uint8); colour noise and normalisation run per batch,
which is faster than per example.

Repeatability: the training pipeline draws every random number from stateless
ops keyed by `seed` and a per-example key from `tf.data.Dataset.random(seed,
rerandomize_each_iteration=True)`, and shuffles with the same seed. Two
pipelines built with the same seed give identical batches, epoch after epoch;
each epoch differs from the one before; another seed gives other batches.
"""

import keras
import tensorflow as tf

from kcnn.data import augment as ops
from kcnn.data.augment import Augment
from kcnn.data.sources import DEFAULT_SHUFFLE_BUFFER, Source



def train_pipeline(data, preprocessing, *, batch_size, augment=Augment(), seed=0,
                   shuffle_buffer=None, cache=False, drop_remainder=True, one_hot=False,
                   num_classes=None, channels=None):
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
        augment: an `Augment` (random crop, flip, PCA lighting, shift), or None
            for none (centre crop only).
        seed: an integer; the same seed gives the same batches.
        shuffle_buffer: examples in the shuffle buffer; None: the source's
            suggestion (all of a folder's or arrays' records, else 10,000).
        cache: False; True to keep the decoded, resized images in memory; or a
            file path prefix to cache them on disk. Augmentation always runs
            after the cache, so each epoch sees new crops.
        drop_remainder: drop the last partial batch (fixed shapes: JAX compiles
            once, distribution strategies split evenly).
        one_hot: float32 one-hot labels of `num_classes` (label smoothing, MixUp).
        num_classes: for one_hot; default: the source's class count.
        channels: the model's channel count; default: the record's, len(mean).

    Returns:
        A `tf.data.Dataset` of (images, labels) batches, prefetched.
    """
    augment = Augment(crop=False, flip=False) if augment is None else augment
    if not isinstance(augment, Augment):
        raise ValueError(f"augment must be a kcnn.data.Augment or None; received "
                         f"augment={augment!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; received seed={seed!r}.")
    _check_batch_size(batch_size)
    records, decode, skip_errors, suggested, source_classes = _unpack(data)
    record, channels = _check_preprocessing(preprocessing, channels)
    if augment.pca_lighting and channels != 3:
        raise ValueError(f"Augment.pca_lighting works on RGB images; this pipeline makes "
                         f"{channels}-channel images. Set pca_lighting=0.")
    num_classes = _check_labels(one_hot, num_classes, source_classes)
    if shuffle_buffer is None:
        shuffle_buffer = suggested or DEFAULT_SHUFFLE_BUFFER
    elif isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) \
            or shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be a positive integer or None; received "
                         f"shuffle_buffer={shuffle_buffer!r}.")
    _check_cache(cache)

    def prepare(*record_parts):
        image, label = decode(*record_parts)
        return _resize(image, record), tf.cast(label, tf.int64)

    def random_part(example, key):
        image, label = example
        seeds = tf.random.split(tf.stack([tf.constant(seed, tf.int64), key]), 4)
        if augment.crop:
            image = ops.random_crop(image, record["crop"], seeds[0])
        else:
            image = ops.center_crop(image, record["crop"])
        if augment.flip:
            image = ops.random_flip(image, seeds[1])
        if augment.shift:
            image = ops.random_shift(image, augment.shift, seeds[2])
        image = ops.to_channels(image, channels)
        if augment.pca_lighting:
            return image, ops.pca_lighting_offset(seeds[3], augment.pca_lighting), label
        return image, label

    shuffle = dict(buffer_size=shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = records
    if not cache:  # records (paths, encoded bytes) are cheaper to shuffle than images
        ds = ds.shuffle(**shuffle)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if skip_errors:
        ds = ds.ignore_errors(log_warning=True)
    if cache:
        ds = ds.cache("" if cache is True else str(cache)).shuffle(**shuffle)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, keys)
    ds = ds.map(random_part, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(ds, batch_size, drop_remainder, record, num_classes if one_hot else None,
                   lighting=bool(augment.pca_lighting))


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
    record, channels = _check_preprocessing(preprocessing, channels)
    num_classes = _check_labels(one_hot, num_classes, source_classes)
    _check_cache(cache)

    def prepare(*record_parts):
        image, label = decode(*record_parts)
        image = _resize(image, record)
        if ten_crop:
            image = ops.ten_crop(image, record["crop"])
        else:
            image = ops.center_crop(image, record["crop"])
        return ops.to_channels(image, channels), tf.cast(label, tf.int64)

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
        if isinstance(max_examples, bool) or not isinstance(max_examples, int) \
                or max_examples < 1:
            raise ValueError(f"max_examples must be a positive integer or None; "
                             f"received max_examples={max_examples!r}.")
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received "
                         f"batch_size={batch_size!r}.")


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
    return num_classes


def _check_preprocessing(preprocessing, channels):
    """The record with crop as (h, w) and mean/std per channel; the channel count."""
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


def _resize(image, record):
    if record["resize"] is None:
        return ops.resize(image, record["crop"], record["interpolation"])
    return ops.resize_shorter(image, record["resize"], record["interpolation"],
                              at_least=record["crop"])


def _finish(ds, batch_size, drop_remainder, record, num_classes, lighting=False):
    """Batch the uint8 crops, then per batch (faster than per example): add the
    PCA lighting offsets, normalise, move channels first if Keras wants it,
    one-hot the labels; prefetch."""
    channels_first = keras.config.image_data_format() == "channels_first"

    def to_model(images, *rest):
        labels = rest[-1]
        if lighting:  # in [0, 1], as AlexNet defines it
            x = tf.cast(images, tf.float32) / 255.0 + rest[0][:, None, None, :]
            images = tf.clip_by_value(x, 0.0, 1.0) * 255.0
        x = ops.normalize(images, record)
        if channels_first:  # (B, H, W, C) -> (B, C, H, W); ten crops keep axis 1
            perm = [0, 3, 1, 2] if x.shape.rank == 4 else [0, 1, 4, 2, 3]
            x = tf.transpose(x, perm)
        if num_classes is not None:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return x, labels

    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
