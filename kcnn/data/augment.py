"""Image operations for tf.data pipelines: resizing, crops, flips, colour, and
torchvision's augmentation menu (random resized crops, affine maps, colour
jitter, grayscale, random erasing, MixUp, CutMix; AutoAugment, RandAugment and
TrivialAugmentWide live in `kcnn.data.autoaugment`).

Every function takes one image, `(height, width, channels)`, and runs as
TensorFlow ops inside a `tf.data` map, whatever the Keras backend. Keras's own
augmentation layers run there too, on every backend, but they are not
torchvision's transforms: they draw from one stateful seed generator per
layer rather than a seed per example, measure rotations in fractions of
a turn and translations in fractions of the size, fill uncovered pixels by
reflection where torchvision fills with zeros, add to the brightness where
torchvision multiplies, and take contrast about each channel's mean where
torchvision takes the grayscale mean. kcnn's functions follow torchvision, so
its recipes and parameter names carry over. Geometric operations keep the
dtype (uint8 stays uint8; resizing rounds back to it). Random operations are
stateless: each takes a `seed`, a shape-[2] integer tensor, and gives the same
result for the same seed, which is what makes a pipeline repeat itself
exactly. Most random ones draw their parameters and hand them to a
deterministic function with torchvision's parameters (`affine`, `rotate`,
`crop`, `center_crop`, `resized_crop`, `resize_shorter`, `adjust_*`, `erase`,
`mixup_with`, `cutmix_with`); tests/menu/test_torchvision_parity.py checks those against
`torchvision.transforms.v2` on photos. On purpose, kcnn rounds integer
results to the nearest level where torchvision truncates (colour jitter,
grayscale: one level at most), and `RandomErasing`'s "random" fill draws
its own noise.

`Augment` lists the random augmentations a training pipeline applies, with
torchvision's names and defaults; the pipeline (`kcnn.data.pipeline`) strings
the functions together. MixUp, CutMix and the fill of random erasing work on
float batches after normalisation, as in torchvision.
"""

import dataclasses
import difflib
import math

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

# The policies of kcnn.data.autoaugment, as Augment names them, and
# AutoAugment's policy names (torchvision's AutoAugmentPolicy values).
POLICIES = ("autoaugment", "randaugment", "trivialaugment")
AUTOAUGMENT_POLICIES = ("imagenet", "cifar10", "svhn")

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos3", "lanczos5",
                  "gaussian", "mitchellcubic")


@dataclasses.dataclass(frozen=True)
class Augment:
    """The random augmentations of a training pipeline, each one per example
    (MixUp and CutMix per batch), in the order listed.

    Names and defaults follow torchvision's transforms; `True` switches one on
    with torchvision's default, 0 / None / False leaves it off.

    crop: a random crop of the model's input size from the resized image
        (AlexNet: resize the shorter side to 256, crop 224 or 227). False: the
        centre crop that evaluation uses.
    resized_crop: `RandomResizedCrop(size, scale, ratio)` in place of `crop`
        (which it overrides): a box of a random share of the area in the
        range `resized_crop` (True: torchvision's (0.08, 1.0)) and a
        log-uniform aspect ratio (width / height) in `resized_crop_ratio`
        ((3/4, 4/3)), cut from the ORIGINAL decoded image, as torchvision's
        training presets do, and resized (antialiased, the preprocessing
        record's interpolation) to the model's input size. The record's
        `resize` then applies to evaluation only.
    flip: a horizontal flip with probability 1/2 (`RandomHorizontalFlip()`).
    vertical_flip: the probability of a vertical flip (`RandomVerticalFlip`,
        True: 0.5).
    shift: translate by up to this many pixels along each axis, filling with 0
        (small shifts for digits, where crops and flips would change the digit).
    rotation, translate, scale, shear: one random affine map per image, as
        `RandomAffine(degrees=rotation, translate, scale, shear)`: rotation in
        degrees, d for (-d, d) or (min, max), turning clockwise as
        RandomAffine's angle does (`RandomRotation((a, b))` turns
        counter-clockwise: it is `rotation=(-b, -a)` here; for d, (-d, d), the
        two are the same); translate (a, b), the largest
        shift as a fraction of the width and the height (a alone: (a, a));
        scale (min, max); shear in degrees along x, d for (-d, d), (min, max),
        or (xmin, xmax, ymin, ymax) for both axes. Uncovered pixels are 0.
    interpolation: "nearest" (torchvision's default) or "bilinear", for the
        affine map and the policies below (torchvision's reference training
        script passes its `--interpolation`, bilinear, to the policies).
    autoaugment, randaugment, trivialaugment: one of torchvision's learned or
        random policies (`kcnn.data.autoaugment`), at most one of the three,
        on uint8 images after the crops, flips and affine map, before colour
        jitter, as torchvision's `ClassificationPresetTrain` places them.
        autoaugment: True or a policy name, "imagenet" (True), "cifar10" or
        "svhn" (`AutoAugment(policy)`); randaugment: True for torchvision's
        `RandAugment()` (2 operations at magnitude 9 of 31 bins), or
        (num_ops, magnitude) or (num_ops, magnitude, num_magnitude_bins);
        trivialaugment: True for `TrivialAugmentWide()`. Uncovered pixels are 0.
    brightness, contrast, saturation, hue: `ColorJitter`: a factor drawn from
        [max(0, 1 - b), 1 + b] (or a given (min, max)) for the first three, a
        hue shift from [-h, h] with 0 <= h <= 0.5 (or (min, max)), applied in a
        random order. Saturation and hue need RGB images.
    grayscale: the probability of `RandomGrayscale` (True: 0.1), RGB only.
    pca_lighting: the standard deviation of AlexNet's PCA colour noise (0.1 in
        the paper); 0 turns it off, True means 0.1. RGB models only.
    erasing: the probability of `RandomErasing` (True: 0.5), of a rectangle of
        `erasing_scale` (0.02, 0.33) of the area and aspect ratio in
        `erasing_ratio` (0.3, 3.3), filled with `erasing_value`: 0, a value per
        channel, or "random" (standard normal noise). As in torchvision, which
        erases after `Normalize`, the value is in the model's normalised units
        (0 is the data set's mean colour).
    mixup, cutmix: the Beta(alpha, alpha) parameter of `MixUp` / `CutMix`
        (True: 1.0), which mix each batch with itself rolled by one and mix the
        one-hot labels in the same proportion; with both, each batch gets one
        of the two at random (torchvision's `RandomChoice`). They need one-hot
        labels (`one_hot=True`).

    `Augment()` is the common ImageNet setting: random crop and flip. Which
    recipe uses what is the training module's choice.
    """

    crop: bool = True
    flip: bool = True
    pca_lighting: float = 0.0
    shift: int = 0
    vertical_flip: float = 0.0
    rotation: tuple | None = None
    translate: tuple | None = None
    scale: tuple | None = None
    shear: tuple | None = None
    interpolation: str = "nearest"
    brightness: tuple | None = None
    contrast: tuple | None = None
    saturation: tuple | None = None
    hue: tuple | None = None
    grayscale: float = 0.0
    erasing: float = 0.0
    erasing_scale: tuple = (0.02, 0.33)
    erasing_ratio: tuple = (0.3, 3.3)
    erasing_value: float | tuple | str = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    resized_crop: tuple | None = None
    resized_crop_ratio: tuple = (3.0 / 4.0, 4.0 / 3.0)
    autoaugment: str | None = None
    randaugment: tuple | None = None
    trivialaugment: bool = False

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("crop", "flip"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Augment.{name} must be True or False; received "
                                 f"{name}={getattr(self, name)!r}.")
        lighting = self.pca_lighting
        if lighting is True:
            put("pca_lighting", 0.1)
        elif lighting is False:
            put("pca_lighting", 0.0)
        elif not _number(lighting) or lighting < 0:
            raise ValueError(
                f"Augment.pca_lighting must be a standard deviation >= 0 (0.1 in "
                f"AlexNet, 0 for none) or True/False; received pca_lighting={lighting!r}.")
        shift = self.shift
        if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
            raise ValueError(f"Augment.shift must be a whole number of pixels >= 0; "
                             f"received shift={shift!r}.")
        for name, default in (("vertical_flip", 0.5), ("grayscale", 0.1), ("erasing", 0.5)):
            put(name, _probability(name, getattr(self, name), default))
        for name in ("mixup", "cutmix"):
            put(name, _alpha(name, getattr(self, name)))
        put("rotation", _symmetric_range("rotation", self.rotation, "degrees"))
        put("shear", _shear_range(self.shear))
        put("translate", _translate(self.translate))
        put("scale", _ordered_pair("scale", self.scale, low=0.0, open_low=True))
        if self.interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"Augment.interpolation must be 'nearest' or 'bilinear'; "
                             f"received interpolation={self.interpolation!r}.")
        for name in ("brightness", "contrast", "saturation"):
            put(name, _factor_range(name, getattr(self, name)))
        put("hue", _hue_range(self.hue))
        put("erasing_scale", _ordered_pair("erasing_scale", self.erasing_scale, low=0.0,
                                           high=1.0, required=True))
        put("erasing_ratio", _ordered_pair("erasing_ratio", self.erasing_ratio, low=0.0,
                                           open_low=True, required=True))
        put("erasing_value", _erasing_value(self.erasing_value))
        resized = (0.08, 1.0) if self.resized_crop is True else self.resized_crop
        put("resized_crop", None if resized is False else _ordered_pair(
            "resized_crop", resized, low=0.0, high=1.0, open_low=True))
        put("resized_crop_ratio", _ordered_pair("resized_crop_ratio",
                                                self.resized_crop_ratio, low=0.0,
                                                open_low=True, required=True))
        put("autoaugment", _autoaugment(self.autoaugment))
        put("randaugment", _randaugment(self.randaugment))
        if self.trivialaugment is None:
            put("trivialaugment", False)
        elif not isinstance(self.trivialaugment, bool):
            raise ValueError(f"Augment.trivialaugment must be True or False; received "
                             f"trivialaugment={self.trivialaugment!r}.")
        on = [name for name in POLICIES if getattr(self, name)]
        if len(on) > 1:
            raise ValueError(f"Augment takes one policy at a time; received "
                             f"{' and '.join(f'{n}={getattr(self, n)!r}' for n in on)}. "
                             f"Set the others to False.")

    @property
    def affine(self):
        """Whether a random affine map (rotation, translate, scale, shear) is drawn."""
        return any(v is not None for v in (self.rotation, self.translate, self.scale,
                                           self.shear))

    @property
    def color_jitter(self):
        return any(v is not None for v in (self.brightness, self.contrast,
                                           self.saturation, self.hue))

    @property
    def policy(self):
        """The policy switched on ("autoaugment", "randaugment", "trivialaugment") or None."""
        return next((name for name in POLICIES if getattr(self, name)), None)

    @property
    def mixes(self):
        """Whether batches are mixed (MixUp or CutMix): labels must be one-hot."""
        return bool(self.mixup or self.cutmix)

    def rgb_only(self):
        """The names of the augmentations switched on that need RGB images."""
        return [name for name in ("saturation", "hue", "grayscale", "pca_lighting")
                if getattr(self, name)]


def resolve(spec, base=None):
    """An `Augment` from a specification, on top of `base` (default `Augment()`).

    `spec` is an `Augment` (taken as is), None (`base`), False (no
    augmentation: centre crop only), a dict of `Augment` fields, or options as
    the command line takes them: a string or list of strings such as
    "rotation=15 brightness=0.4 scale=0.9,1.1 erasing" (see `parse_options`).
    Fields not given keep `base`'s values, except that a policy switched on
    (autoaugment, randaugment, trivialaugment) replaces the base's: at most
    one runs.
    """
    base = Augment() if base is None else base
    if spec is None:
        return base
    if spec is False:
        return Augment(crop=False, flip=False)
    if isinstance(spec, Augment):
        return spec
    if isinstance(spec, (str, list, tuple)):
        spec = parse_options(spec)
    if not isinstance(spec, dict):
        raise ValueError(f"augment must be a kcnn.data.Augment, a dict of its fields, "
                         f"options such as 'rotation=15 mixup', None or False; received "
                         f"augment={spec!r}.")
    fields = [f.name for f in dataclasses.fields(Augment)]
    for key in spec:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"augment has no option {key!r}.{hint} Options: "
                             f"{', '.join(fields)}.")
    if any(spec.get(name) for name in POLICIES):
        spec = {**{name: False for name in POLICIES}, **spec}
    return dataclasses.replace(base, **spec)


def parse_options(tokens):
    """Command-line options as a dict.

    "a=1 b=0.5,2 c=none d" gives {"a": 1, "b": (0.5, 2), "c": None, "d": True}.

    `tokens` is a string (split at spaces) or a list of strings, each `key`,
    `key=value` or `key=v1,v2,...` (a tuple); values are read as integers,
    floats, true/false, none, or else kept as strings.
    """
    if isinstance(tokens, str):
        tokens = tokens.split()
    options = {}
    for token in tokens:
        if not isinstance(token, str) or not token or token.startswith("="):
            raise ValueError(f"options must be 'key' or 'key=value'; received {token!r}.")
        key, sep, text = token.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            options[key] = True
        elif "," in text:
            options[key] = tuple(_parse_value(v) for v in text.split(",") if v.strip())
        else:
            options[key] = _parse_value(text)
    return options


def _parse_value(text):
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# Checks of the Augment fields, which also bring them to one form: ranges as
# tuples of floats, None when off.

def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _probability(name, value, default):
    if value is True:
        return default
    if value is False or value is None:
        return 0.0
    if not _number(value) or not 0 <= value <= 1:
        raise ValueError(f"Augment.{name} is a probability and must be in [0, 1] (True: "
                         f"{default}); received {name}={value!r}.")
    return float(value)


def _alpha(name, value):
    if value is True:
        return 1.0
    if value is False or value is None:
        return 0.0
    if not _number(value) or value < 0:
        raise ValueError(f"Augment.{name} is the Beta distribution's alpha and must be "
                         f">= 0 (0: off, True: 1.0); received {name}={value!r}.")
    return float(value)


def _ordered_pair(name, value, low=None, high=None, open_low=False, required=False):
    if value is None and not required:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_number, value)):
        lo, hi = float(value[0]), float(value[1])
        ok = lo <= hi and (low is None or (lo > low if open_low else lo >= low)) \
            and (high is None or hi <= high)
        if ok:
            return lo, hi
    bounds = ""
    if low is not None:
        bounds += f", {'>' if open_low else '>='} {low}"
    if high is not None:
        bounds += f", <= {high}"
    raise ValueError(f"Augment.{name} must be a pair (min, max) with min <= max{bounds}; "
                     f"received {name}={value!r}.")


def _symmetric_range(name, value, unit):
    """d -> (-d, d) with d >= 0; (min, max) as given; 0 or None -> None."""
    if value is None or value is False:
        return None
    if _number(value):
        if value < 0:
            raise ValueError(f"Augment.{name} in {unit} must be >= 0 (for (-{name}, "
                             f"{name})) or a pair (min, max); received {name}={value!r}.")
        return None if value == 0 else (-float(value), float(value))
    pair = _ordered_pair(name, value)
    return None if pair == (0.0, 0.0) else pair


def _shear_range(value):
    if isinstance(value, (list, tuple)) and len(value) == 4:
        if all(map(_number, value)) and value[0] <= value[1] and value[2] <= value[3]:
            return None if not any(value) else tuple(float(v) for v in value)
        raise ValueError(f"Augment.shear as four numbers is (xmin, xmax, ymin, ymax) with "
                         f"min <= max; received shear={value!r}.")
    pair = _symmetric_range("shear", value, "degrees")
    return None if pair is None else pair + (0.0, 0.0)


def _translate(value):
    if value is None or value is False:
        return None
    pair = (value, value) if _number(value) else value
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(map(_number, pair)) \
            and all(0 <= v <= 1 for v in pair):
        return None if not any(pair) else (float(pair[0]), float(pair[1]))
    raise ValueError(f"Augment.translate must be (a, b), the largest shift as fractions of "
                     f"the width and height, each in [0, 1]; received translate={value!r}.")


def _factor_range(name, value):
    """ColorJitter's brightness, contrast, saturation: b -> (max(0, 1 - b), 1 + b)."""
    if value is None or value is False:
        return None
    if _number(value):
        if value < 0:
            raise ValueError(f"Augment.{name} must be >= 0 (a factor in [max(0, 1 - "
                             f"{name}), 1 + {name}]) or a pair (min, max) of factors >= 0; "
                             f"received {name}={value!r}.")
        return None if value == 0 else (max(0.0, 1.0 - value), 1.0 + float(value))
    pair = _ordered_pair(name, value, low=0.0)
    return None if pair == (1.0, 1.0) else pair


def _hue_range(value):
    if value is None or value is False:
        return None
    if _number(value):
        if not 0 <= value <= 0.5:
            raise ValueError(f"Augment.hue must be in [0, 0.5] (a shift in [-hue, hue] of "
                             f"the colour circle) or a pair within [-0.5, 0.5]; received "
                             f"hue={value!r}.")
        return None if value == 0 else (-float(value), float(value))
    pair = _ordered_pair("hue", value, low=-0.5, high=0.5)
    return None if pair == (0.0, 0.0) else pair


def _autoaugment(value):
    if value is None or value is False:
        return None
    if value is True:
        return "imagenet"
    if value in AUTOAUGMENT_POLICIES:
        return value
    raise ValueError(f"Augment.autoaugment must be True (the ImageNet policy), False, or "
                     f"one of {', '.join(map(repr, AUTOAUGMENT_POLICIES))}; received "
                     f"autoaugment={value!r}.")


def _randaugment(value):
    """True -> torchvision's (2, 9, 31); (num_ops, magnitude[, bins]) checked."""
    if value is None or value is False:
        return None
    if value is True:
        return 2, 9, 31
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if isinstance(value, (list, tuple)) and len(value) in (2, 3) and all(map(whole, value)):
        num_ops, magnitude, bins = (tuple(value) + (31,))[:3]
        if num_ops >= 1 and bins >= 2 and 0 <= magnitude < bins:
            return num_ops, magnitude, bins
    raise ValueError(f"Augment.randaugment must be True (torchvision's 2 operations at "
                     f"magnitude 9 of 31 bins), False, or whole numbers (num_ops, "
                     f"magnitude) or (num_ops, magnitude, num_magnitude_bins) with "
                     f"num_ops >= 1, num_magnitude_bins >= 2 and 0 <= magnitude < "
                     f"num_magnitude_bins; received randaugment={value!r}.")


def _erasing_value(value):
    if value == "random":
        return value
    if _number(value):
        return float(value)
    if isinstance(value, (list, tuple)) and len(value) in (1, 3) and all(map(_number, value)):
        return tuple(float(v) for v in value)
    raise ValueError(f"Augment.erasing_value must be a number, one number per channel, or "
                     f"'random'; received erasing_value={value!r}.")


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
        # In integers: ceil(h * (min_height / h)) in floats is min_height + 1
        # for some sizes (7 rows grown to 29 gave 30).
        h, w = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
        height_binds = min_height * w >= min_width * h
        grown_height = tf.where(height_binds, tf.constant(min_height, tf.int64),
                                (h * min_width + w - 1) // w)
        grown_width = tf.where(height_binds, (w * min_height + h - 1) // h,
                               tf.constant(min_width, tf.int64))
        too_small = tf.logical_or(new_height < min_height, new_width < min_width)
        new_height = tf.where(too_small, tf.cast(grown_height, tf.int32), new_height)
        new_width = tf.where(too_small, tf.cast(grown_width, tf.int32), new_width)

    def do_resize():
        out = tf.image.resize(image, tf.stack([new_height, new_width]),
                              method=interpolation, antialias=True)
        return _like(out, image)

    same = tf.logical_and(new_height == height, new_width == width)
    out = tf.cond(same, lambda: tf.identity(image), do_resize)
    return tf.ensure_shape(out, [None, None, image.shape[-1]])


def crop(image, top, left, height, width):
    """torchvision's `F.crop` for a box inside the image: rows top..top+height,
    columns left..left+width."""
    return image[top:top + height, left:left + width, :]


def center_crop(image, size):
    """The central `size` crop; offsets round as torchvision's `center_crop`."""
    height, width = size_pair(size)
    shape = tf.shape(image)
    top = tf.cast(tf.round((shape[0] - height) / 2), tf.int32)
    left = tf.cast(tf.round((shape[1] - width) / 2), tf.int32)
    out = crop(image, top, left, height, width)
    return tf.ensure_shape(out, [height, width, image.shape[-1]])


def random_crop(image, size, seed):
    """A `size` crop at a uniformly random position (stateless, keyed by `seed`)."""
    height, width = size_pair(size)
    shape = tf.shape(image)
    out = tf.image.stateless_random_crop(image, tf.stack([height, width, shape[2]]), seed)
    return tf.ensure_shape(out, [height, width, image.shape[-1]])


def resized_crop(image, top, left, height, width, size, interpolation="bilinear"):
    """torchvision's `F.resized_crop(image, top, left, height, width, size,
    interpolation, antialias=True)` for a box inside the image: the box cut
    out and resized (antialiased) to `size`, an int for a square or (height,
    width) (a list of two for `F.resized_crop`, where an int sets the shorter
    side). Integer images round back."""
    return resize(crop(image, top, left, height, width), size, interpolation)


def _box_tries(area_seed, ratio_seed, height, width, scale, ratio):
    """torchvision's 10 tries of a box (RandomResizedCrop, RandomErasing): areas,
    a share in `scale` of the image's, and aspect ratios log-uniform in `ratio`."""
    area = tf.cast(height * width, tf.float32)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    return (area * _uniform(area_seed, scale, [10]),
            tf.exp(_uniform(ratio_seed, log_ratio, [10])))


def resized_crop_box(height, width, seed, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
    """The box `RandomResizedCrop` cuts: int32 (top, left, height, width).

    As torchvision draws it: up to 10 tries of an area, a share in `scale` of
    the image's, and an aspect ratio (width / height) log-uniform in `ratio`,
    sides rounded to whole pixels; the first that fits is placed uniformly.
    If none fits, the central box of the image's own aspect ratio clipped to
    `ratio` (the whole image when that is within it).
    """
    seeds = tf.random.split(seed, 4)
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    target, aspect = _box_tries(seeds[0], seeds[1], height, width, scale, ratio)
    widths = tf.cast(tf.round(tf.sqrt(target * aspect)), tf.int32)
    heights = tf.cast(tf.round(tf.sqrt(target / aspect)), tf.int32)
    fits = (widths > 0) & (widths <= width) & (heights > 0) & (heights <= height)
    first = tf.argmax(tf.cast(fits, tf.int32))
    # The fallback, in float64 as torchvision computes it in Python floats.
    h64, w64 = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    in_ratio = w64 / h64
    fallback_h = tf.where(in_ratio < ratio[0], tf.round(w64 / ratio[0]), h64)
    fallback_w = tf.where(in_ratio > ratio[1], tf.round(h64 * ratio[1]), w64)
    found = tf.reduce_any(fits)
    h = tf.where(found, heights[first], tf.cast(fallback_h, tf.int32))
    w = tf.where(found, widths[first], tf.cast(fallback_w, tf.int32))
    top = tf.where(found, tf.random.stateless_uniform([], seeds[2], 0, height - h + 1,
                                                      dtype=tf.int32), (height - h) // 2)
    left = tf.where(found, tf.random.stateless_uniform([], seeds[3], 0, width - w + 1,
                                                       dtype=tf.int32), (width - w) // 2)
    return tf.stack([top, left, h, w])


def random_resized_crop(image, seed, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                        interpolation="bilinear"):
    """`RandomResizedCrop(size, scale, ratio, interpolation, antialias=True)`:
    `resized_crop_box`'s box, resized to `size` (an int for a square, or
    (height, width))."""
    shape = tf.shape(image)
    top, left, height, width = tf.unstack(resized_crop_box(shape[0], shape[1], seed, scale,
                                                           ratio))
    return resized_crop(image, top, left, height, width, size, interpolation)


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
        crop(image, 0, 0, height, width),
        crop(image, 0, right, height, width),
        crop(image, bottom, 0, height, width),
        crop(image, bottom, right, height, width),
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


# ----------------------------------------------------------------------------
# torchvision's transforms menu. Each takes one image (H, W, C), uint8 or float
# in [0, 1], and a shape-[2] seed, and keeps shape, dtype and range; the batch
# operations (erase, mixup, cutmix) take float batches (B, H, W, C).


def _uniform(seed, bounds, shape=()):
    low, high = bounds
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def _to_float(image):
    return tf.cast(image, tf.float32) / 255.0 if image.dtype.is_integer \
        else tf.cast(image, tf.float32)


def _from_float(x, like):
    if like.dtype.is_integer:
        return tf.saturate_cast(tf.round(x * 255.0), like.dtype)
    return tf.cast(x, like.dtype)


def random_vertical_flip(image, seed, p=0.5):
    """An upside-down flip with probability `p` (`RandomVerticalFlip`)."""
    flip = tf.random.stateless_uniform([], seed) < p
    return tf.cond(flip, lambda: tf.reverse(image, axis=[0]), lambda: tf.identity(image))


def affine_transform(angle, translate, scale, shear, height, width):
    """The 8 numbers of `tf.raw_ops.ImageProjectiveTransformV3` for an affine map.

    torchvision's `_get_inverse_affine_matrix` about the image centre, as
    `F.affine` uses it: rotate by `angle` degrees clockwise, shear by
    `shear = (x, y)` degrees, scale, then translate by `translate = (tx, ty)`
    pixels. The transform maps each output pixel back to where it comes from.
    """
    rad = math.pi / 180.0
    rot = angle * rad
    sx, sy = shear[0] * rad, shear[1] * rad
    tx, ty = translate
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos_sy = tf.cos(sy)
    a = tf.cos(rot - sy) / cos_sy
    b = -tf.cos(rot - sy) * tf.tan(sx) / cos_sy - tf.sin(rot)
    c = tf.sin(rot - sy) / cos_sy
    d = -tf.sin(rot - sy) * tf.tan(sx) / cos_sy + tf.cos(rot)
    m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    zero = tf.zeros_like(m0)
    return tf.stack([m0, m1, m2, m3, m4, m5, zero, zero])


def affine(image, angle=0.0, translate=(0.0, 0.0), scale=1.0, shear=(0.0, 0.0),
           interpolation="nearest", fill=0):
    """torchvision's `F.affine(image, angle, translate, scale, shear, fill=fill)`.

    angle: degrees, clockwise (as `F.affine` and so `RandomAffine`; `rotate`
    turns the other way, as `F.rotate`); translate: (tx, ty) pixels; scale: a
    factor; shear: (x, y) degrees. Pixels from outside the image are `fill`.
    Bilinear edges follow torchvision's fill: it interpolates a mask of the
    image with it and takes `mask * (value - fill) + fill`, which darkens the
    one-pixel rim of the moved image more than TensorFlow's own constant fill
    does: with TensorFlow's fill, 1.6% of the values of a photo turned by 30
    degrees were off torchvision's by more than 2/255 (up to 64/255); with the
    mask, none (tests/menu/test_torchvision_parity.py). `fill=None` is
    torchvision's `fill=None` (the default of its AutoAugment, RandAugment and
    TrivialAugmentWide): no mask, the rim blended with zeros once. Integer
    images round back, as torchvision does.
    """
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"interpolation must be 'nearest' or 'bilinear'; received "
                         f"interpolation={interpolation!r}.")
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    to_float = lambda v: tf.cast(v, tf.float32)  # noqa: E731
    transform = affine_transform(to_float(angle), (to_float(translate[0]),
                                                   to_float(translate[1])),
                                 to_float(scale), (to_float(shear[0]), to_float(shear[1])),
                                 height, width)
    if fill is None:  # torchvision's None: zeros from outside, no mask
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(image, tf.float32)[None], transforms=transform[None],
            output_shape=shape[:2], fill_value=0.0, interpolation=interpolation.upper(),
            fill_mode="CONSTANT")[0]
        return tf.ensure_shape(_like(out, image), image.shape)
    fill = tf.cast(fill, tf.float32)
    if interpolation != "bilinear":  # nearest copies pixels: no rounding, no mask
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None], transforms=transform[None], output_shape=shape[:2],
            fill_value=fill, interpolation="NEAREST", fill_mode="CONSTANT")[0]
        return tf.ensure_shape(out, image.shape)
    x = tf.cast(image, tf.float32)  # the mask rides along as one more channel
    x = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=transform[None], output_shape=shape[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    out, mask = out[..., :-1], out[..., -1:]
    out = _like(mask * (out - fill) + fill, image)
    return tf.ensure_shape(out, image.shape)


def rotate(image, angle, interpolation="nearest", fill=0):
    """torchvision's `F.rotate(image, angle, fill=fill)`: `angle` degrees
    counter-clockwise about the centre, the size kept."""
    return affine(image, -tf.cast(angle, tf.float32), interpolation=interpolation, fill=fill)


def _affine_draw(seed, image, degrees, translate, scale, shear):
    """`RandomAffine.make_params`: angle, (tx, ty), scale, (shear x, shear y)."""
    seeds = tf.random.split(seed, 6)
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    angle = _uniform(seeds[0], degrees) if degrees else tf.constant(0.0)
    if translate:
        tx = tf.round(_uniform(seeds[1], (-translate[0] * width, translate[0] * width)))
        ty = tf.round(_uniform(seeds[2], (-translate[1] * height, translate[1] * height)))
    else:
        tx = ty = tf.constant(0.0)
    factor = _uniform(seeds[3], scale) if scale else tf.constant(1.0)
    shear_x = _uniform(seeds[4], shear[:2]) if shear else tf.constant(0.0)
    shear_y = _uniform(seeds[5], shear[2:]) if shear and len(shear) == 4 \
        else tf.constant(0.0)
    return angle, (tx, ty), factor, (shear_x, shear_y)


def random_affine(image, seed, degrees=None, translate=None, scale=None, shear=None,
                  interpolation="nearest", fill=0):
    """`RandomAffine(degrees, translate, scale, shear)`: one random map per image.

    degrees: (min, max), turning clockwise as torchvision's `RandomAffine`
    (which hands its angle to `F.affine`); translate: (a, b), the largest
    shifts as fractions of width and height (whole pixels, as torchvision
    rounds them); scale: (min, max); shear: (xmin, xmax) or (xmin, xmax, ymin,
    ymax) in degrees. None leaves that part out. Pixels from outside the image
    are `fill`. The map drawn is `affine`'s.
    """
    angle, shift, factor, shear_xy = _affine_draw(seed, image, degrees, translate, scale,
                                                  shear)
    return affine(image, angle, shift, factor, shear_xy, interpolation, fill)


def random_rotation(image, seed, degrees, interpolation="nearest", fill=0):
    """`RandomRotation(degrees)`: d for (-d, d), or (min, max), counter-clockwise
    as torchvision's (`F.rotate`), the other way from `random_affine`."""
    if not isinstance(degrees, (list, tuple)):
        degrees = (-float(degrees), float(degrees))
    angle = _affine_draw(seed, image, degrees, None, None, None)[0]
    return rotate(image, angle, interpolation, fill)


def _gray_float(x):
    return tf.reduce_sum(x * tf.constant(_LUMA), axis=-1, keepdims=True)


def adjust_brightness(x, factor):
    """torchvision's `adjust_brightness` on a float image in [0, 1]."""
    return tf.clip_by_value(x * factor, 0.0, 1.0)


def adjust_contrast(x, factor):
    """Blend with the image's mean gray level, as torchvision's `adjust_contrast`."""
    mean = tf.reduce_mean(_gray_float(x) if x.shape[-1] == 3 else x)
    return tf.clip_by_value(factor * x + (1.0 - factor) * mean, 0.0, 1.0)


def adjust_saturation(x, factor):
    """Blend with the image's grayscale version, as torchvision's `adjust_saturation`."""
    if x.shape[-1] != 3:
        return x
    return tf.clip_by_value(factor * x + (1.0 - factor) * _gray_float(x), 0.0, 1.0)


def adjust_hue(x, delta):
    """Rotate the hue by `delta` of the colour circle (in [-0.5, 0.5])."""
    if x.shape[-1] != 3:
        return x
    return tf.image.adjust_hue(x, delta)


def color_jitter(image, seed, brightness=None, contrast=None, saturation=None, hue=None):
    """`ColorJitter`: factors drawn from the given (min, max) ranges (None: that
    one off), applied in a random order, as torchvision does. Saturation and
    hue leave 1-channel images alone."""
    seeds = tf.random.split(seed, 5)
    x = _to_float(image)
    steps = [(adjust_brightness, brightness), (adjust_contrast, contrast),
             (adjust_saturation, saturation), (adjust_hue, hue)]
    factors = [_uniform(s, bounds) if bounds else None
               for s, (_, bounds) in zip(tf.unstack(seeds[1:]), steps)]
    order = tf.argsort(tf.random.stateless_uniform([4], seeds[0]))

    def branch(i, x):
        fn, factor = steps[i][0], factors[i]
        return (lambda: fn(x, factor)) if factor is not None else (lambda: x)

    def apply_next(position, x):  # a loop, so that the four branches are traced once
        x = tf.switch_case(order[position], [branch(i, x) for i in range(4)])
        return position + 1, tf.ensure_shape(x, image.shape)

    _, x = tf.while_loop(lambda position, _: position < 4, apply_next,
                         (tf.constant(0), x))
    return _from_float(x, image)


def random_grayscale(image, seed, p=0.1):
    """`RandomGrayscale(p)`: gray (BT.601 luma) in every channel, with probability p."""
    if image.shape[-1] == 1:
        return image
    gray = lambda: tf.repeat(_gray(image), image.shape[-1], axis=-1)  # noqa: E731
    return tf.cond(tf.random.stateless_uniform([], seed) < p, gray,
                   lambda: tf.identity(image))


def erasing_box(height, width, seed, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3)):
    """The rectangle `RandomErasing` picks: int32 (top, left, height, width).

    With probability p: up to 10 tries (as torchvision) of an area fraction in
    `scale` and a log-uniform aspect ratio in `ratio`; the first that fits is
    placed uniformly. Otherwise (or if none fits) an empty box, (0, 0, 0, 0).
    """
    seeds = tf.random.split(seed, 5)
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    erase_area, aspect = _box_tries(seeds[1], seeds[2], height, width, scale, ratio)
    heights = tf.cast(tf.round(tf.sqrt(erase_area * aspect)), tf.int32)
    widths = tf.cast(tf.round(tf.sqrt(erase_area / aspect)), tf.int32)
    fits = (heights < height) & (widths < width)
    first = tf.argmax(tf.cast(fits, tf.int32))
    # When no try fits, a zero box keeps the position draw below in range.
    h = tf.where(tf.reduce_any(fits), heights[first], 0)
    w = tf.where(tf.reduce_any(fits), widths[first], 0)
    top = tf.random.stateless_uniform([], seeds[3], 0, height - h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[4], 0, width - w + 1, dtype=tf.int32)
    apply = (tf.random.stateless_uniform([], seeds[0]) < p) & tf.reduce_any(fits)
    return tf.where(apply, tf.stack([top, left, h, w]), tf.zeros([4], tf.int32))


def erase(images, boxes, value=0.0, seed=None):
    """Fill one box per image of a batch (B, H, W, C) with `value`.

    boxes: int (B, 4) rows of (top, left, height, width), as `erasing_box`
    gives; value: a number, one per channel, or "random" (standard normal
    noise, drawn with `seed`).
    """
    shape = tf.shape(images)
    rows = tf.range(shape[1])[None, :, None]
    cols = tf.range(shape[2])[None, None, :]
    boxes = tf.cast(boxes, tf.int32)
    top, left = boxes[:, 0, None, None], boxes[:, 1, None, None]
    bottom, right = top + boxes[:, 2, None, None], left + boxes[:, 3, None, None]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    if isinstance(value, str):
        fill = tf.random.stateless_normal(shape, seed, dtype=tf.float32)
    else:
        fill = tf.broadcast_to(tf.constant(value, tf.float32), shape)
    return tf.where(inside[..., None], tf.cast(fill, images.dtype), images)


def random_erasing(image, seed, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
    """`RandomErasing` on one image: `erasing_box` filled with `value`."""
    seeds = tf.random.split(seed, 2)
    shape = tf.shape(image)
    box = erasing_box(shape[0], shape[1], seeds[0], p, scale, ratio)
    return erase(image[None], box[None], value, seeds[1])[0]


def _beta(seed, alpha):
    seeds = tf.random.split(seed, 2)
    a = tf.random.stateless_gamma([], seeds[0], alpha=alpha)
    b = tf.random.stateless_gamma([], seeds[1], alpha=alpha)
    return a / tf.maximum(a + b, 1e-12)


def mixup(images, labels, seed, alpha=1.0):
    """torchvision's `MixUp`: lam ~ Beta(alpha, alpha) for the batch, then
    `mixup_with`."""
    return mixup_with(images, labels, _beta(seed, alpha))


def mixup_with(images, labels, lam):
    """`MixUp` for a given lam: each image and its one-hot label become
    lam * own + (1 - lam) * the previous one's in the batch."""
    images = lam * images + (1.0 - lam) * tf.roll(images, 1, axis=0)
    labels = lam * labels + (1.0 - lam) * tf.roll(labels, 1, axis=0)
    return images, labels


def cutmix(images, labels, seed, alpha=1.0):
    """torchvision's `CutMix`: lam ~ Beta(alpha, alpha) and a centre pixel drawn
    uniformly, then `cutmix_with`."""
    seeds = tf.random.split(seed, 3)
    lam = _beta(seeds[0], alpha)
    shape = tf.shape(images)
    cy = tf.random.stateless_uniform([], seeds[1], 0, shape[1], dtype=tf.int32)
    cx = tf.random.stateless_uniform([], seeds[2], 0, shape[2], dtype=tf.int32)
    return cutmix_with(images, labels, lam, cy, cx)


def cutmix_with(images, labels, lam, cy, cx):
    """`CutMix` for a given lam and box centre (row cy, column cx): a box of
    about (1 - lam) of the area, half-sides int(0.5 * sqrt(1 - lam) * size)
    about the centre and clipped to the image, is pasted from the previous
    image of the batch; labels mix by the area kept."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    cy, cx = tf.cast(cy, tf.int32), tf.cast(cx, tf.int32)
    r = 0.5 * tf.sqrt(1.0 - tf.cast(lam, tf.float32))
    half_h = tf.cast(r * tf.cast(height, tf.float32), tf.int32)
    half_w = tf.cast(r * tf.cast(width, tf.float32), tf.int32)
    y1, y2 = tf.maximum(cy - half_h, 0), tf.minimum(cy + half_h, height)
    x1, x2 = tf.maximum(cx - half_w, 0), tf.minimum(cx + half_w, width)
    rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
    inside = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    images = tf.where(inside[None, :, :, None], tf.roll(images, 1, axis=0), images)
    kept = 1.0 - tf.cast((x2 - x1) * (y2 - y1), tf.float32) \
        / tf.cast(height * width, tf.float32)
    labels = kept * labels + (1.0 - kept) * tf.roll(labels, 1, axis=0)
    return images, labels


def mix(images, labels, seed, mixup_alpha=0.0, cutmix_alpha=0.0):
    """MixUp, CutMix, or with both alphas one of the two at random per batch."""
    seeds = tf.random.split(seed, 2)
    if mixup_alpha and cutmix_alpha:
        return tf.cond(tf.random.stateless_uniform([], seeds[0]) < 0.5,
                       lambda: mixup(images, labels, seeds[1], mixup_alpha),
                       lambda: cutmix(images, labels, seeds[1], cutmix_alpha))
    if mixup_alpha:
        return mixup(images, labels, seeds[1], mixup_alpha)
    if cutmix_alpha:
        return cutmix(images, labels, seeds[1], cutmix_alpha)
    return images, labels
