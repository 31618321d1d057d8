"""Per-example image operations for tf.data pipelines: resizing, crops, flips, colour.

Every function takes one image, `(height, width, channels)`, and runs as
TensorFlow ops inside a `tf.data` map, so it works whatever the Keras backend
(Keras preprocessing layers do not: they fail inside `tf.data.map` on JAX and
torch). Geometric operations keep the dtype (uint8 stays uint8; resizing rounds
back to it). Random operations are stateless: each takes a `seed`, a shape-[2]
integer tensor, and gives the same result for the same seed, which is what makes
a pipeline repeat itself exactly.

`Augment` lists the random augmentations a training pipeline applies; the
pipeline (`kcnn.data.pipeline`) strings the functions together.
"""

import dataclasses

import keras  # noqa: F401  (before TensorFlow: see kcnn/__init__.py)
import tensorflow as tf

# AlexNet's PCA colour noise: the eigenvalues and eigenvectors (the columns of
# the matrix) of the covariance of ImageNet's RGB pixels in [0, 1], the values
# used by fb.resnet.torch and most reimplementations since.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

# ITU-R BT.601 luma, as PIL's convert("L") and tf.image.rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos3", "lanczos5",
                  "gaussian", "mitchellcubic")


@dataclasses.dataclass(frozen=True)
class Augment:
    """The random augmentations of a training pipeline, each one per example.

    crop: a random crop of the model's input size from the resized image
        (AlexNet: resize the shorter side to 256, crop 224 or 227). False: the
        centre crop that evaluation uses.
    flip: a random horizontal flip, with probability 1/2.
    pca_lighting: the standard deviation of AlexNet's PCA colour noise (0.1 in
        the paper); 0 turns it off, True means 0.1. RGB models only.
    shift: translate by up to this many pixels along each axis, filling with 0
        (small shifts for digits, where crops and flips would change the digit).

    `Augment()` is the common ImageNet setting: random crop and flip. Which
    recipe uses what is the training module's choice.
    """

    crop: bool = True
    flip: bool = True
    pca_lighting: float = 0.0
    shift: int = 0

    def __post_init__(self):
        for name in ("crop", "flip"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Augment.{name} must be True or False; received "
                                 f"{name}={getattr(self, name)!r}.")
        lighting = self.pca_lighting
        if lighting is True:
            object.__setattr__(self, "pca_lighting", 0.1)
        elif lighting is False:
            object.__setattr__(self, "pca_lighting", 0.0)
        elif not isinstance(lighting, (int, float)) or lighting < 0:
            raise ValueError(
                f"Augment.pca_lighting must be a standard deviation >= 0 (0.1 in "
                f"AlexNet, 0 for none) or True/False; received pca_lighting={lighting!r}.")
        shift = self.shift
        if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
            raise ValueError(f"Augment.shift must be a whole number of pixels >= 0; "
                             f"received shift={shift!r}.")


def size_pair(size):
    """(height, width) from an int or a pair."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _like(resized, image):
    """`tf.image.resize` gives float32: round back to the input's integer dtype."""
    if image.dtype.is_integer and resized.dtype != image.dtype:
        return tf.saturate_cast(tf.round(resized), image.dtype)
    return tf.cast(resized, image.dtype)


def resize(image, size, interpolation="bilinear"):
    """Resize to exactly `size` (int or (height, width)), aspect ratio not kept.

    Anti-aliased when shrinking (as PIL and torchvision do); images already of
    that size pass through untouched.
    """
    height, width = size_pair(size)
    shape = tf.shape(image)

    def do_resize():
        out = tf.image.resize(image, (height, width), method=interpolation, antialias=True)
        return _like(out, image)

    out = tf.cond(tf.logical_and(shape[0] == height, shape[1] == width),
                  lambda: tf.identity(image), do_resize)
    return tf.ensure_shape(out, [height, width, image.shape[-1]])


def resize_shorter(image, size, interpolation="bilinear", at_least=None):
    """Resize so the shorter side is `size`, keeping the aspect ratio.

    The longer side becomes floor(size * long / short), as in torchvision's
    `Resize(size)`. `at_least`, a (height, width), scales the image up further
    when a side would come out smaller, so that a crop of that size always fits
    (a non-square crop on an image of another shape). Anti-aliased when
    shrinking; no-op when the size is already right.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    new_long = (size * long) // short
    new_height = tf.where(height <= width, size, new_long)
    new_width = tf.where(height <= width, new_long, size)
    if at_least is not None:
        min_height, min_width = size_pair(at_least)
        h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
        scale = tf.maximum(min_height / h, min_width / w)
        too_small = tf.logical_or(new_height < min_height, new_width < min_width)
        new_height = tf.where(too_small, tf.cast(tf.math.ceil(h * scale), tf.int32),
                              new_height)
        new_width = tf.where(too_small, tf.cast(tf.math.ceil(w * scale), tf.int32),
                             new_width)

    def do_resize():
        out = tf.image.resize(image, tf.stack([new_height, new_width]),
                              method=interpolation, antialias=True)
        return _like(out, image)

    same = tf.logical_and(new_height == height, new_width == width)
    out = tf.cond(same, lambda: tf.identity(image), do_resize)
    return tf.ensure_shape(out, [None, None, image.shape[-1]])


def _crop(image, top, left, height, width):
    return image[top:top + height, left:left + width, :]


def center_crop(image, size):
    """The central `size` crop; offsets round as torchvision's `center_crop`."""
    height, width = size_pair(size)
    shape = tf.shape(image)
    top = tf.cast(tf.round((shape[0] - height) / 2), tf.int32)
    left = tf.cast(tf.round((shape[1] - width) / 2), tf.int32)
    out = _crop(image, top, left, height, width)
    return tf.ensure_shape(out, [height, width, image.shape[-1]])


def random_crop(image, size, seed):
    """A `size` crop at a uniformly random position (stateless, keyed by `seed`)."""
    height, width = size_pair(size)
    shape = tf.shape(image)
    out = tf.image.stateless_random_crop(image, tf.stack([height, width, shape[2]]), seed)
    return tf.ensure_shape(out, [height, width, image.shape[-1]])


def ten_crop(image, size):
    """The paper's 10 test crops as one tensor of shape (10, height, width, C).

    Order: top-left, top-right, bottom-left, bottom-right, centre, then the
    horizontal reflections of those five patches in the same order (torchvision's
    `TenCrop` crops the flipped image instead: the same ten patches, the flipped
    corners in the other order). Average a model's predictions over axis 1 of a
    batch of these for the 10-crop evaluation (test-time augmentation).
    """
    height, width = size_pair(size)
    shape = tf.shape(image)
    bottom, right = shape[0] - height, shape[1] - width
    patches = [
        _crop(image, 0, 0, height, width),
        _crop(image, 0, right, height, width),
        _crop(image, bottom, 0, height, width),
        _crop(image, bottom, right, height, width),
        center_crop(image, (height, width)),
    ]
    crops = tf.stack(patches + [tf.reverse(p, axis=[1]) for p in patches])
    return tf.ensure_shape(crops, [10, height, width, image.shape[-1]])


def random_flip(image, seed):
    """A horizontal flip with probability 1/2 (stateless, keyed by `seed`)."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def random_shift(image, max_shift, seed):
    """Translate by a random whole number of pixels in [-max_shift, max_shift]
    along each axis (stateless); uncovered pixels are 0."""
    if max_shift == 0:
        return image
    padded = tf.pad(image, [[max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    out = tf.image.stateless_random_crop(padded, tf.shape(image), seed)
    return tf.ensure_shape(out, image.shape)


def pca_lighting(image, seed, std=0.1):
    """AlexNet's colour augmentation on a float RGB image in [0, 1].

    Adds eigvec @ (alpha * eigval) to every pixel, alpha ~ N(0, std^2) per
    eigenvector (one draw per image), with ImageNet's RGB eigenvalues and
    eigenvectors; the result is clipped to [0, 1]. With std 0.1 the shift is
    about 0.02 (5 of 255 levels), mostly along the intensity axis.
    """
    rgb = pca_lighting_offset(seed, std)
    return tf.clip_by_value(image + tf.cast(rgb, image.dtype), 0.0, 1.0)


def pca_lighting_offset(seed, std=0.1):
    """The RGB offset `pca_lighting` adds for `seed`: eigvec @ (alpha * eigval).

    Pipelines draw it per example and add it to whole batches at once.
    """
    alpha = tf.random.stateless_normal([3], seed, stddev=std)
    eigvec = tf.constant(IMAGENET_EIGVEC, tf.float32)
    eigval = tf.constant(IMAGENET_EIGVAL, tf.float32)
    return tf.linalg.matvec(eigvec, alpha * eigval)


def _gray(image):
    luma = tf.reduce_sum(tf.cast(image, tf.float32) * tf.constant(_LUMA), axis=-1,
                         keepdims=True)
    return _like(luma, image)


def to_channels(image, channels):
    """Convert to 1 (grayscale, BT.601 luma) or 3 (RGB) channels.

    Also accepts 2 (gray + alpha) and 4 (RGBA) channels, dropping the alpha, and
    images whose channel count is only known at run time (decoded files).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; received channels={channels!r}.")
    known = image.shape[-1]
    if known is not None:
        if known in (2, 4):
            image = image[..., :known - 1]
            known -= 1
        if known == channels:
            return image
        return tf.repeat(image, 3, axis=-1) if channels == 3 else _gray(image)
    count = tf.shape(image)[-1]
    image = tf.cond(count % 2 == 0, lambda: image[..., :-1], lambda: image)
    if channels == 3:
        image = tf.cond(tf.shape(image)[-1] == 1,
                        lambda: tf.repeat(image, 3, axis=-1), lambda: image)
    else:
        image = tf.cond(tf.shape(image)[-1] == 3, lambda: _gray(image), lambda: image)
    return tf.ensure_shape(image, image.shape[:-1].concatenate([channels]))


def normalize(image, preprocessing):
    """float32 (image * scale - mean) / std, from a preprocessing record.

    `image` holds pixel values 0..255 (uint8 or float); the record is the
    `model.metadata["preprocessing"]` dict: `scale` (1/255 brings pixels to
    [0, 1]), per-channel `mean` and `std` on that scale.
    """
    scale = preprocessing.get("scale", 1.0 / 255.0)
    mean = tf.constant(preprocessing["mean"], tf.float64)
    std = tf.constant(preprocessing["std"], tf.float64)
    # one multiply-add over the pixels: x * (scale / std) - mean / std
    gain = tf.cast(scale / std, tf.float32)
    offset = tf.cast(mean / std, tf.float32)
    return tf.cast(image, tf.float32) * gain - offset
