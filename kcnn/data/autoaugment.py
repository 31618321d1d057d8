"""torchvision's automatic augmentation policies as tf.data ops: AutoAugment,
RandAugment and TrivialAugmentWide.

Each policy draws operations from a fixed set, with torchvision's names
(`Identity`, `ShearX`, `ShearY`, `TranslateX`, `TranslateY`, `Rotate`,
`Brightness`, `Color`, `Contrast`, `Sharpness`, `Posterize`, `Solarize`,
`AutoContrast`, `Equalize`, and `Invert` in AutoAugment), at a magnitude read
from a table of bins, negated with probability 1/2 for the signed operations:

- `auto_augment`: `v2.AutoAugment(policy)`: one of the 25 learned sub-policies
  (ImageNet, CIFAR-10 or SVHN), each two operations applied with their own
  probability at a bin of 10.
- `rand_augment`: `v2.RandAugment(num_ops, magnitude, num_magnitude_bins)`:
  `num_ops` operations drawn uniformly, all at bin `magnitude`.
- `trivial_augment_wide`: `v2.TrivialAugmentWide(num_magnitude_bins)`: one
  operation drawn uniformly at a bin drawn uniformly, from wider ranges.

The operation sets, bins and signs (`AUTOAUGMENT_SPACE`, `RANDAUGMENT_SPACE`,
`TRIVIALAUGMENT_WIDE_SPACE`, `AUTOAUGMENT_POLICIES`) are torchvision's, in
torchvision's order; `apply_op(image, name, magnitude)` does what torchvision's
`_apply_image_or_video_transform` does for that name and magnitude. Like the
rest of kcnn's menu (`kcnn.data.augment`), everything runs as TensorFlow ops in
a tf.data map on every Keras backend, and the draws are stateless: the same
`seed` (a shape-[2] integer tensor) gives the same image.

The images are uint8 (H, W, C) with C = 3, or C = 1 (then `Color` leaves them
alone, as torchvision does), the dtype torchvision's policies take; the dtype
and shape are kept. Interpolation is "nearest" (the policies' default) or
"bilinear", and `fill` the value of the uncovered pixels: None (torchvision's
policies' default, as here) or one number. What differs on
purpose: the colour operations (`Brightness`, `Color`, `Contrast`,
`Sharpness`, `AutoContrast`) round to the nearest level where torchvision
truncates, as the rest of kcnn's menu does (one level at most; two for
`Color` and `Contrast` at factors near 0, where torchvision also floors the
gray level it blends with: measured on 64x64 photo crops at magnitude -0.99);
`Posterize`, `Solarize`, `Equalize` and `Invert` are exact, and the
geometric ones copy torchvision's pixels but for ties of nearest-neighbour
sampling. With "bilinear", `fill=None` blends the rim of the moved image
with black once, as torchvision's None does, and a number blends it through a
mask, as torchvision does for a number (`kcnn.data.augment.affine`).
tests/menu/test_autoaugment.py checks each operation against torchvision at
fixed magnitudes, and the tables and policies against torchvision's own.
"""

import math

import keras  # noqa: F401  (before TensorFlow: see kcnn/__init__.py)
import tensorflow as tf

from kcnn.data.augment import (_from_float, _to_float, adjust_brightness, adjust_contrast,
                               adjust_saturation, affine, rotate)

POLICIES = ("imagenet", "cifar10", "svhn")
INTERPOLATIONS = ("nearest", "bilinear")


# ----------------------------------------------------------------------------
# The operations at a given magnitude, with torchvision's parameters.

def adjust_sharpness(image, factor):
    """torchvision's `F.adjust_sharpness` on a uint8 image: blend with the
    image smoothed by the 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13
    (rounded to whole levels, as torchvision does); the one-pixel border keeps
    the original pixels, and images of 2 rows or columns or fewer pass
    through."""
    def sharpen():
        x = tf.cast(image, tf.float32)
        kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
        kernel = tf.tile(kernel[:, :, None, None], [1, 1, image.shape[-1], 1])
        blurred = tf.nn.depthwise_conv2d(x[None], kernel, [1, 1, 1, 1], "VALID")[0]
        inner = x[1:-1, 1:-1]
        inner = inner + (1.0 - tf.cast(factor, tf.float32)) * (tf.round(blurred) - inner)
        inside = tf.pad(tf.ones_like(inner), [[1, 1], [1, 1], [0, 0]])
        out = tf.where(inside > 0, tf.pad(inner, [[1, 1], [1, 1], [0, 0]]), x)
        return tf.saturate_cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), image.dtype)

    shape = tf.shape(image)
    small = (shape[0] <= 2) | (shape[1] <= 2)
    return tf.ensure_shape(tf.cond(small, lambda: tf.identity(image), sharpen), image.shape)


def posterize(image, bits):
    """torchvision's `F.posterize`: keep the `bits` highest bits of each value
    (0 to 8)."""
    bits = tf.cast(bits, tf.int32)
    mask = 256 - tf.bitwise.left_shift(1, 8 - bits)
    return tf.bitwise.bitwise_and(image, tf.cast(mask, tf.uint8))


def solarize(image, threshold):
    """torchvision's `F.solarize`: invert the values >= `threshold` (in levels
    0-255), compared in float32 as torch promotes a uint8 image and a Python
    float."""
    above = tf.cast(image, tf.float32) >= tf.cast(threshold, tf.float32)
    return tf.where(above, invert(image), image)


def _solarize_magnitude(image, magnitude):
    # torchvision's threshold is 255 * magnitude in Python floats (float64),
    # then float32 in the comparison: 255 * 0.8 rounds to 204.0 there, and 204
    # is inverted; float32 products would give other ties.
    if isinstance(magnitude, (tf.Tensor, tf.Variable)):
        magnitude = tf.cast(magnitude, tf.float64)
    else:
        magnitude = tf.constant(magnitude, tf.float64)
    return solarize(image, 255.0 * magnitude)


def invert(image):
    """torchvision's `F.invert`: 255 - value."""
    return 255 - image


def autocontrast(image):
    """torchvision's `F.autocontrast`: stretch each channel so its lowest value
    becomes 0 and its highest 255; a constant channel stays as it is."""
    x = tf.cast(image, tf.float32)
    low = tf.reduce_min(x, axis=[0, 1], keepdims=True)
    high = tf.reduce_max(x, axis=[0, 1], keepdims=True)
    flat = tf.equal(low, high)
    low = tf.where(flat, 0.0, low)
    scale = tf.where(flat, 1.0, (high - low) / 255.0)
    out = tf.clip_by_value((x - low) / scale, 0.0, 255.0)
    return tf.saturate_cast(tf.round(out), image.dtype)


def equalize(image):
    """torchvision's `F.equalize` (PIL's `ImageOps.equalize`): per channel, the
    histogram's cumulative sum as a look-up table, with PIL's rounding.

    step = (pixels that do not hold the channel's highest value) // 255; value
    v maps to (pixels below v + step // 2) // step, clipped to 255 (0 maps to
    0). A channel with step 0 (nearly constant) stays as it is.
    """
    channels = image.shape[-1]
    values = tf.reshape(tf.cast(image, tf.int32), [-1, channels])
    keys = values + 256 * tf.range(channels)  # one histogram per channel
    hist = tf.math.bincount(tf.reshape(keys, [-1]), minlength=256 * channels,
                            maxlength=256 * channels, dtype=tf.int32)
    hist = tf.transpose(tf.reshape(hist, [channels, 256]))  # (256, C)
    cumulative = tf.cumsum(hist, axis=0)
    top = tf.reduce_max(values, axis=0)
    count_top = tf.gather(tf.transpose(hist), top, batch_dims=1)
    step = (tf.shape(values)[0] - count_top) // 255
    below = tf.concat([tf.zeros([1, channels], tf.int32), cumulative[:-1]], axis=0)
    lut = tf.minimum((below + step // 2) // tf.maximum(step, 1), 255)
    lut = tf.where(step > 0, lut, tf.range(256)[:, None])  # step 0: unchanged
    out = tf.gather(tf.transpose(lut), tf.transpose(values), batch_dims=1)
    return tf.reshape(tf.cast(tf.transpose(out), image.dtype), tf.shape(image))


def _colour(fn):
    return lambda image, factor: _from_float(fn(_to_float(image), factor), image)


def _shear(image, magnitude, axis, interpolation, fill):
    # torchvision shears about the top-left corner (center=[0, 0]), by
    # atan(magnitude): `affine` shears about the centre, so a shift of
    # -magnitude * size / 2 along the sheared axis moves the fixed line there.
    magnitude = tf.cast(magnitude, tf.float32)
    degrees = tf.atan(magnitude) * (180.0 / math.pi)
    zero = tf.constant(0.0)
    size = tf.cast(tf.shape(image)[axis], tf.float32)
    shift = -magnitude * size / 2.0
    if axis == 0:  # ShearX: columns move in proportion to the row
        return affine(image, zero, (shift, zero), 1.0, (degrees, zero), interpolation, fill)
    return affine(image, zero, (zero, shift), 1.0, (zero, degrees), interpolation, fill)


def _translate(image, magnitude, axis, interpolation, fill):
    pixels = tf.cast(tf.cast(magnitude, tf.int32), tf.float32)  # int(): toward zero
    zero = tf.constant(0.0)
    shift = (pixels, zero) if axis == 1 else (zero, pixels)
    return affine(image, zero, shift, 1.0, (zero, zero), interpolation, fill)


_OPS = {  # name -> f(image, magnitude, interpolation, fill), as torchvision applies it
    "Identity": lambda image, m, i, f: tf.identity(image),
    "ShearX": lambda image, m, i, f: _shear(image, m, 0, i, f),
    "ShearY": lambda image, m, i, f: _shear(image, m, 1, i, f),
    "TranslateX": lambda image, m, i, f: _translate(image, m, 1, i, f),
    "TranslateY": lambda image, m, i, f: _translate(image, m, 0, i, f),
    "Rotate": lambda image, m, i, f: rotate(image, m, i, f),
    "Brightness": lambda image, m, i, f: _colour(adjust_brightness)(image, 1.0 + m),
    "Color": lambda image, m, i, f: _colour(adjust_saturation)(image, 1.0 + m),
    "Contrast": lambda image, m, i, f: _colour(adjust_contrast)(image, 1.0 + m),
    "Sharpness": lambda image, m, i, f: adjust_sharpness(image, 1.0 + m),
    "Posterize": lambda image, m, i, f: posterize(image, tf.cast(m, tf.int32)),
    "Solarize": lambda image, m, i, f: _solarize_magnitude(image, m),
    "AutoContrast": lambda image, m, i, f: autocontrast(image),
    "Equalize": lambda image, m, i, f: equalize(image),
    "Invert": lambda image, m, i, f: invert(image),
}
OPERATIONS = tuple(_OPS)


def apply_op(image, name, magnitude=0.0, interpolation="nearest", fill=None):
    """One operation of the policies, as torchvision's
    `_apply_image_or_video_transform(image, name, magnitude, ...)` applies it.

    name: one of `OPERATIONS`. magnitude (a number or scalar tensor, signed
    where the operation is): ShearX/ShearY, the shear's tangent, about the
    top-left corner; TranslateX/TranslateY, pixels (truncated toward zero);
    Rotate, degrees counter-clockwise; Brightness/Color/Contrast/Sharpness,
    the factor minus 1; Posterize, the bits kept; Solarize, the threshold as a
    fraction of 255; the others take none.
    """
    image = _check_image(image)
    if name not in _OPS:
        raise ValueError(f"name must be one of {', '.join(OPERATIONS)}; received "
                         f"name={name!r}.")
    _check_interpolation_and_fill(interpolation, fill)
    out = _OPS[name](image, magnitude, interpolation, fill)
    return tf.ensure_shape(out, image.shape)


# ----------------------------------------------------------------------------
# The policies' tables: (name, magnitudes(num_bins, height, width) or None,
# signed), in torchvision's order (the order the draws index).

def _linspace(high, low=0.0):
    return lambda bins, height, width: tf.linspace(
        tf.cast(low, tf.float32), tf.cast(high(height, width) if callable(high) else high,
                                          tf.float32), bins)


def _posterize_bits(levels):
    """8 - round(bin / ((bins - 1) / levels)): bits from 8 down to 8 - levels."""
    def bits(bins, height, width):
        return tf.round(8.0 - tf.range(bins, dtype=tf.float32) / ((bins - 1) / levels))
    return bits


def _space(shear, translate, rotate_, enhance, posterize_levels, identity, invert_):
    space = [("Identity", None, False)] if identity else []
    space += [
        ("ShearX", _linspace(shear), True),
        ("ShearY", _linspace(shear), True),
        ("TranslateX", _linspace(lambda h, w: translate(w)), True),
        ("TranslateY", _linspace(lambda h, w: translate(h)), True),
        ("Rotate", _linspace(rotate_), True),
        ("Brightness", _linspace(enhance), True),
        ("Color", _linspace(enhance), True),
        ("Contrast", _linspace(enhance), True),
        ("Sharpness", _linspace(enhance), True),
        ("Posterize", _posterize_bits(posterize_levels), False),
        ("Solarize", _linspace(0.0, low=1.0), False),
        ("AutoContrast", None, False),
        ("Equalize", None, False),
    ]
    return tuple(space + ([("Invert", None, False)] if invert_ else []))


def _image_fraction(size):
    return 150.0 / 331.0 * tf.cast(size, tf.float32)


AUTOAUGMENT_SPACE = _space(0.3, _image_fraction, 30.0, 0.9, 4, identity=False, invert_=True)
RANDAUGMENT_SPACE = _space(0.3, _image_fraction, 30.0, 0.9, 4, identity=True, invert_=False)
TRIVIALAUGMENT_WIDE_SPACE = _space(0.99, lambda size: 32.0, 135.0, 0.99, 6, identity=True,
                                   invert_=False)

# The learned sub-policies of AutoAugment (Cubuk et al. 2019), as torchvision
# lists them: two (operation, probability, magnitude bin of 10) each.
_IMAGENET = """
Posterize .4 8, Rotate .6 9 | Solarize .6 5, AutoContrast .6 - | Equalize .8 -, Equalize .6 -
Posterize .6 7, Posterize .6 6 | Equalize .4 -, Solarize .2 4 | Equalize .4 -, Rotate .8 8
Solarize .6 3, Equalize .6 - | Posterize .8 5, Equalize 1 - | Rotate .2 3, Solarize .6 8
Equalize .6 -, Posterize .4 6 | Rotate .8 8, Color .4 0 | Rotate .4 9, Equalize .6 -
Equalize 0 -, Equalize .8 - | Invert .6 -, Equalize 1 - | Color .6 4, Contrast 1 8
Rotate .8 8, Color 1 2 | Color .8 8, Solarize .8 7 | Sharpness .4 7, Invert .6 -
ShearX .6 5, Equalize 1 - | Color .4 0, Equalize .6 - | Equalize .4 -, Solarize .2 4
Solarize .6 5, AutoContrast .6 - | Invert .6 -, Equalize 1 - | Color .6 4, Contrast 1 8
Equalize .8 -, Equalize .6 -
"""
_CIFAR10 = """
Invert .1 -, Contrast .2 6 | Rotate .7 2, TranslateX .3 9 | Sharpness .8 1, Sharpness .9 3
ShearY .5 8, TranslateY .7 9 | AutoContrast .5 -, Equalize .9 - | ShearY .2 7, Posterize .3 7
Color .4 3, Brightness .6 7 | Sharpness .3 9, Brightness .7 9 | Equalize .6 -, Equalize .5 -
Contrast .6 7, Sharpness .6 5 | Color .7 7, TranslateX .5 8 | Equalize .3 -, AutoContrast .4 -
TranslateY .4 3, Sharpness .2 6 | Brightness .9 6, Color .2 8 | Solarize .5 2, Invert 0 -
Equalize .2 -, AutoContrast .6 - | Equalize .2 -, Equalize .6 - | Color .9 9, Equalize .6 -
AutoContrast .8 -, Solarize .2 8 | Brightness .1 3, Color .7 0
Solarize .4 5, AutoContrast .9 - | TranslateY .9 9, TranslateY .7 9
AutoContrast .9 -, Solarize .8 3 | Equalize .8 -, Invert .1 -
TranslateY .7 9, AutoContrast .9 -
"""
_SVHN = """
ShearX .9 4, Invert .2 - | ShearY .9 8, Invert .7 - | Equalize .6 -, Solarize .6 6
Invert .9 -, Equalize .6 - | Equalize .6 -, Rotate .9 3 | ShearX .9 4, AutoContrast .8 -
ShearY .9 8, Invert .4 - | ShearY .9 5, Solarize .2 6 | Invert .9 -, AutoContrast .8 -
Equalize .6 -, Rotate .9 3 | ShearX .9 4, Solarize .3 3 | ShearY .8 8, Invert .7 -
Equalize .9 -, TranslateY .6 6 | Invert .9 -, Equalize .6 - | Contrast .3 3, Rotate .8 4
Invert .8 -, TranslateY 0 2 | ShearY .7 6, Solarize .4 8 | Invert .6 -, Rotate .8 4
ShearY .3 7, TranslateX .9 3 | ShearX .1 6, Invert .6 - | Solarize .7 2, TranslateY .6 7
ShearY .8 4, Invert .8 - | ShearX .7 9, TranslateY .8 3 | ShearY .8 5, AutoContrast .7 -
ShearX .7 2, Invert .1 -
"""


def _parse_policy(text):
    def operation(token):
        name, probability, magnitude = token.split()
        return name, float(probability), None if magnitude == "-" else int(magnitude)

    return tuple(tuple(operation(op) for op in pair.split(","))
                 for pair in text.replace("\n", "|").split("|") if pair.strip())


AUTOAUGMENT_POLICIES = {name: _parse_policy(text) for name, text in
                        (("imagenet", _IMAGENET), ("cifar10", _CIFAR10), ("svhn", _SVHN))}


def magnitude_table(space, num_bins, height, width):
    """A space's magnitudes as a float32 (operations, num_bins) tensor and its
    signs as a bool (operations,) tensor; operations without one get zeros."""
    rows = [tf.zeros([num_bins]) if fn is None else tf.cast(fn(num_bins, height, width),
                                                             tf.float32)
            for _, fn, _ in space]
    return tf.stack(rows), tf.constant([signed for _, _, signed in space])


# ----------------------------------------------------------------------------
# The policies.

def _draw_sign(seed, signed):
    """-1 with probability 1/2 for a signed operation, else 1."""
    negative = signed & (tf.random.stateless_uniform([], seed) <= 0.5)
    return tf.where(negative, -1.0, 1.0)


def _switch(image, space, index, magnitude, interpolation, fill):
    """The operation `index` of `space` at `magnitude` (traced once per operation)."""
    branches = [lambda name=name: tf.ensure_shape(
        _OPS[name](image, magnitude, interpolation, fill), image.shape)
        for name, _, _ in space]
    return tf.ensure_shape(tf.switch_case(index, branches), image.shape)


def _apply_steps(image, count, step):
    """Applies `step(i, image)` for i = 0 .. count - 1 in a loop (so the
    operations' graphs are traced once, whatever `count`)."""
    def body(i, x):
        return i + 1, step(i, x)

    _, out = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), image))
    return tf.ensure_shape(out, image.shape)


def auto_augment(image, seed, policy="imagenet", interpolation="nearest", fill=None):
    """`v2.AutoAugment(policy)`: one of the policy's 25 sub-policies drawn
    uniformly; each of its two operations applied with its probability, at its
    bin of 10 (negated with probability 1/2 where signed).

    image: uint8 (H, W, 1 or 3); seed: a shape-[2] integer tensor (the same
    seed, the same result); policy: "imagenet" (torchvision's default),
    "cifar10" or "svhn"; interpolation: "nearest" or "bilinear"; fill: the
    value of uncovered pixels.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(map(repr, POLICIES))}; received "
                         f"policy={policy!r}.")
    image = _check_image(image)
    _check_interpolation_and_fill(interpolation, fill)
    names = [name for name, _, _ in AUTOAUGMENT_SPACE]
    rules = AUTOAUGMENT_POLICIES[policy]
    ops = tf.constant([[names.index(name) for name, _, _ in pair] for pair in rules])
    chance = tf.constant([[p for _, p, _ in pair] for pair in rules], tf.float32)
    bins = tf.constant([[m or 0 for _, _, m in pair] for pair in rules])
    shape = tf.shape(image)
    table, signed = magnitude_table(AUTOAUGMENT_SPACE, 10, shape[0], shape[1])
    seed = tf.convert_to_tensor(seed)
    chosen = tf.random.stateless_uniform([], seed, 0, len(rules), dtype=tf.int32)

    def step(i, x):
        seeds = tf.random.split(tf.random.experimental.stateless_fold_in(seed, i), 2)
        op = ops[chosen, i]
        magnitude = table[op, bins[chosen, i]] * _draw_sign(seeds[1], signed[op])
        applied = tf.random.stateless_uniform([], seeds[0]) < chance[chosen, i]
        return tf.cond(applied, lambda: _switch(x, AUTOAUGMENT_SPACE, op, magnitude,
                                                interpolation, fill),
                       lambda: tf.identity(x))

    return _apply_steps(image, 2, step)


def rand_augment(image, seed, num_ops=2, magnitude=9, num_magnitude_bins=31,
                 interpolation="nearest", fill=None):
    """`v2.RandAugment(num_ops, magnitude, num_magnitude_bins)`: `num_ops`
    operations, each drawn uniformly from `RANDAUGMENT_SPACE` (repeats
    allowed), all at bin `magnitude` of `num_magnitude_bins` (negated with
    probability 1/2 where signed).

    image: uint8 (H, W, 1 or 3); seed: a shape-[2] integer tensor (the same
    seed, the same result); num_ops >= 0; 0 <= magnitude < num_magnitude_bins;
    interpolation: "nearest" or "bilinear"; fill: the value of uncovered pixels.
    """
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"num_ops must be a whole number >= 0; received num_ops={num_ops!r}.")
    _check_bins(num_magnitude_bins)
    if isinstance(magnitude, bool) or not isinstance(magnitude, int) \
            or not 0 <= magnitude < num_magnitude_bins:
        raise ValueError(f"magnitude must be a whole number with 0 <= magnitude < "
                         f"num_magnitude_bins ({num_magnitude_bins}); received "
                         f"magnitude={magnitude!r}.")
    image = _check_image(image)
    _check_interpolation_and_fill(interpolation, fill)
    if num_ops == 0:
        return image
    shape = tf.shape(image)
    table, signed = magnitude_table(RANDAUGMENT_SPACE, num_magnitude_bins, shape[0],
                                    shape[1])
    seed = tf.convert_to_tensor(seed)

    def step(i, x):
        seeds = tf.random.split(tf.random.experimental.stateless_fold_in(seed, i), 2)
        op = tf.random.stateless_uniform([], seeds[0], 0, len(RANDAUGMENT_SPACE),
                                         dtype=tf.int32)
        value = table[op, magnitude] * _draw_sign(seeds[1], signed[op])
        return _switch(x, RANDAUGMENT_SPACE, op, value, interpolation, fill)

    return _apply_steps(image, num_ops, step)


def trivial_augment_wide(image, seed, num_magnitude_bins=31, interpolation="nearest", fill=None):
    """`v2.TrivialAugmentWide(num_magnitude_bins)`: one operation drawn
    uniformly from `TRIVIALAUGMENT_WIDE_SPACE` at a bin drawn uniformly from
    `num_magnitude_bins` (negated with probability 1/2 where signed).

    image: uint8 (H, W, 1 or 3); seed: a shape-[2] integer tensor (the same
    seed, the same result); num_magnitude_bins >= 2; interpolation: "nearest"
    or "bilinear"; fill: the value of uncovered pixels.
    """
    _check_bins(num_magnitude_bins)
    image = _check_image(image)
    _check_interpolation_and_fill(interpolation, fill)
    shape = tf.shape(image)
    table, signed = magnitude_table(TRIVIALAUGMENT_WIDE_SPACE, num_magnitude_bins, shape[0],
                                    shape[1])
    seeds = tf.random.split(tf.convert_to_tensor(seed), 3)
    op = tf.random.stateless_uniform([], seeds[0], 0, len(TRIVIALAUGMENT_WIDE_SPACE),
                                     dtype=tf.int32)
    bin_ = tf.random.stateless_uniform([], seeds[1], 0, num_magnitude_bins, dtype=tf.int32)
    magnitude = table[op, bin_] * _draw_sign(seeds[2], signed[op])
    return _switch(image, TRIVIALAUGMENT_WIDE_SPACE, op, magnitude, interpolation, fill)


# ----------------------------------------------------------------------------
# Argument checks.

def _check_image(image):
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8 or image.shape.rank != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"image must be one uint8 image (height, width, 1 or 3 channels), "
                         f"as torchvision's policies take; received dtype={image.dtype.name}, "
                         f"shape={image.shape}.")
    return image


def _check_interpolation_and_fill(interpolation, fill):
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of "
                         f"{', '.join(map(repr, INTERPOLATIONS))}; received "
                         f"interpolation={interpolation!r}.")
    if fill is not None and (isinstance(fill, bool) or not isinstance(fill, (int, float))
                             or not 0 <= fill <= 255):
        raise ValueError(f"fill must be None (torchvision's policies' default) or one number "
                         f"in [0, 255] (the value of uncovered pixels); received fill={fill!r}.")


def _check_bins(num_magnitude_bins):
    if isinstance(num_magnitude_bins, bool) or not isinstance(num_magnitude_bins, int) \
            or num_magnitude_bins < 2:
        raise ValueError(f"num_magnitude_bins must be a whole number >= 2; received "
                         f"num_magnitude_bins={num_magnitude_bins!r}.")
