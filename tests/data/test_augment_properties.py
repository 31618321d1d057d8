"""kcnn.data.augment over drawn cases: `augment=` option strings parse back to the
`Augment` they were written from, garbage is refused naming the option, and the
shorter-side resize and centre crop land where torchvision's do.

All of it is backend-independent (Python parsing, and TensorFlow ops that run
inside tf.data whatever the Keras backend): it runs once, on torch.
"""

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kcnn.data import Augment
from kcnn.data import augment as ops
from tests.options import negative, non_finite, option, words

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="backend-independent: option parsing is Python and the image operations are "
           "TensorFlow ops on every backend; runs once, on torch")

FIELDS = [f.name for f in dataclasses.fields(Augment)]


# ----------------------------------------------------------------------------
# Option strings


def pairs(low, high, *, min_gap=0.0):
    """Ordered (min, max) pairs of finite floats in [low, high]."""
    number = st.floats(low, high)
    return st.tuples(number, number).map(sorted).filter(
        lambda p: p[1] - p[0] >= min_gap).map(tuple)


def numbers(low, high):
    return st.one_of(st.integers(math.ceil(low), math.floor(high)), st.floats(low, high))


probability = st.one_of(st.booleans(), numbers(0, 1))
VALID = {
    "crop": st.booleans(),
    "flip": st.booleans(),
    "pca_lighting": st.one_of(st.booleans(), numbers(0, 1)),
    "shift": st.integers(0, 8),
    "vertical_flip": probability,
    "rotation": st.one_of(st.none(), numbers(0, 180), pairs(-180, 180)),
    "translate": st.one_of(st.none(), numbers(0, 1), pairs(0, 1)),
    "scale": st.one_of(st.none(), pairs(1e-3, 3)),
    "shear": st.one_of(st.none(), numbers(0, 45), pairs(-45, 45),
                       st.tuples(pairs(-45, 45), pairs(-45, 45)).map(lambda p: p[0] + p[1])),
    "interpolation": st.sampled_from(["nearest", "bilinear"]),
    "brightness": st.one_of(st.none(), numbers(0, 2), pairs(0, 3)),
    "contrast": st.one_of(st.none(), numbers(0, 2), pairs(0, 3)),
    "saturation": st.one_of(st.none(), numbers(0, 2), pairs(0, 3)),
    "hue": st.one_of(st.none(), numbers(0, 0.5), pairs(-0.5, 0.5)),
    "grayscale": probability,
    "erasing": probability,
    "erasing_scale": pairs(0, 1),
    "erasing_ratio": pairs(1e-3, 10),
    "erasing_value": st.one_of(numbers(-3, 3), st.just("random"),
                               st.tuples(st.floats(-3, 3)),
                               st.tuples(*[st.floats(-3, 3)] * 3)),
    "mixup": st.one_of(st.booleans(), numbers(0, 5)),
    "cutmix": st.one_of(st.booleans(), numbers(0, 5)),
    "resized_crop": st.one_of(st.none(), st.booleans(), pairs(1e-3, 1)),
    "resized_crop_ratio": pairs(1e-3, 10),
    "autoaugment": st.one_of(st.none(), st.booleans(),
                             st.sampled_from(["imagenet", "cifar10", "svhn"])),
    "randaugment": st.one_of(
        st.none(), st.booleans(), st.tuples(st.integers(1, 4), st.integers(0, 30)),
        st.integers(2, 40).flatmap(lambda bins: st.tuples(
            st.integers(1, 4), st.integers(0, bins - 1), st.just(bins)))),
    "trivialaugment": st.one_of(st.none(), st.booleans()),
}
POLICIES = ("autoaugment", "randaugment", "trivialaugment")


def one_policy(options):
    """At most one of the policies on: Augment refuses two."""
    return sum(bool(options.get(name)) for name in POLICIES) <= 1


def test_every_augment_field_has_a_strategy():
    assert sorted(VALID) == sorted(FIELDS)


@settings(max_examples=60)
@given(options=st.fixed_dictionaries({}, optional=VALID).filter(one_policy),
       hyphens=st.booleans(),
       as_list=st.booleans())
def test_written_options_parse_back_to_the_same_augment(options, hyphens, as_list):
    tokens = [option(k, v, hyphens) for k, v in options.items()]
    spec = tokens if as_list else " ".join(tokens)
    expected = Augment(**options)
    assert ops.resolve(spec) == expected
    assert ops.resolve(options) == expected
    # on top of another base, only the given fields change
    base = Augment(crop=False, flip=False, shift=3, mixup=0.5)
    assert ops.resolve(spec, base) == dataclasses.replace(base, **options)


above_one = st.floats(min_value=1.0 + 1e-6, allow_infinity=False)
reversed_pairs = pairs(-100, 100, min_gap=1e-6).map(lambda p: (p[1], p[0]))
not_a_pair = st.one_of(st.tuples(st.floats(-1, 1)),
                       st.tuples(*[st.floats(-1, 1)] * 3))
with_non_finite = st.tuples(non_finite, st.floats(-1, 1))
bad_range = st.one_of(reversed_pairs, not_a_pair, with_non_finite)
bad_probability = st.one_of(negative, above_one)
bad_alpha = negative
INVALID = {
    "crop": st.one_of(st.integers(), st.floats(allow_nan=False), st.none()),
    "flip": st.one_of(st.integers(), st.floats(allow_nan=False), st.none()),
    "pca_lighting": negative,
    "shift": st.one_of(st.integers(max_value=-1), st.floats(0.1, 0.9)),
    "vertical_flip": bad_probability,
    "rotation": st.one_of(negative, bad_range),
    "translate": st.one_of(negative, above_one, pairs(-1, 2).filter(
        lambda p: p[0] < 0 or p[1] > 1), not_a_pair),
    "scale": st.one_of(st.floats(0.1, 2), bad_range, pairs(-1, 1).filter(
        lambda p: p[0] <= 0)),
    "shear": st.one_of(negative, bad_range, st.tuples(reversed_pairs, pairs(-1, 1)).map(
        lambda p: p[0] + p[1])),
    "interpolation": st.one_of(st.integers(), st.floats(allow_nan=False)),
    "brightness": st.one_of(negative, bad_range, pairs(-2, 2).filter(lambda p: p[0] < 0)),
    "contrast": st.one_of(negative, bad_range, pairs(-2, 2).filter(lambda p: p[0] < 0)),
    "saturation": st.one_of(negative, bad_range, pairs(-2, 2).filter(lambda p: p[0] < 0)),
    "hue": st.one_of(negative, st.floats(0.5 + 1e-6, 10), bad_range,
                     pairs(-2, 2).filter(lambda p: p[0] < -0.5 or p[1] > 0.5)),
    "grayscale": bad_probability,
    "erasing": bad_probability,
    "erasing_scale": st.one_of(st.none(), st.floats(0, 1), bad_range,
                               pairs(-1, 2).filter(lambda p: p[0] < 0 or p[1] > 1)),
    "erasing_ratio": st.one_of(st.none(), st.floats(0.1, 2), bad_range,
                               pairs(-1, 2).filter(lambda p: p[0] <= 0)),
    "erasing_value": st.one_of(st.tuples(st.floats(-1, 1), st.floats(-1, 1)),
                               with_non_finite),
    "mixup": bad_alpha,
    "cutmix": bad_alpha,
    "resized_crop": st.one_of(st.floats(0.1, 1), bad_range,
                              pairs(-1, 2).filter(lambda p: p[0] <= 0 or p[1] > 1)),
    "resized_crop_ratio": st.one_of(st.none(), st.floats(0.1, 2), bad_range,
                                    pairs(-1, 2).filter(lambda p: p[0] <= 0)),
    "autoaugment": st.one_of(st.integers(), st.floats(allow_nan=False),
                             st.sampled_from(["imagenet1k", "cifar100", "svhn2"])),
    "randaugment": st.one_of(
        st.integers(), st.floats(allow_nan=False),
        st.tuples(st.integers(max_value=0), st.integers(0, 30)),  # no operation
        st.tuples(st.integers(1, 4), st.integers(min_value=31)),  # past the last bin
        st.tuples(st.integers(1, 4), st.integers(max_value=-1)),
        st.tuples(st.floats(0.5, 3.5), st.integers(0, 9))),
    "trivialaugment": st.one_of(st.integers(), st.floats(allow_nan=False)),
}


def test_every_augment_field_has_garbage():
    assert sorted(INVALID) == sorted(FIELDS)


@settings(max_examples=100)
@given(data=st.data(), field=st.sampled_from(FIELDS), hyphens=st.booleans())
def test_garbage_values_are_refused_naming_the_option(data, field, hyphens):
    # words and non-finite numbers are wrong for every option; each has its own too
    value = data.draw(st.one_of(words, non_finite, INVALID[field]), label=field)
    with pytest.raises(ValueError, match=rf"\b{field}="):
        ops.resolve(option(field, value, hyphens))


@settings(max_examples=30)
@given(key=words.filter(lambda w: w not in FIELDS), value=st.integers(0, 3))
def test_unknown_options_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=rf"augment has no option '{key}'"):
        ops.resolve(f"crop=false {key}={value}")


@settings(max_examples=30)
@given(value=st.one_of(words, st.integers().map(str)), as_list=st.booleans())
def test_a_token_without_a_key_is_refused(value, as_list):
    token = f"={value}"
    with pytest.raises(ValueError, match=rf"options must be 'key' or 'key=value'; "
                                         rf"received '{token}'"):
        ops.resolve([token] if as_list else f"flip {token}")


# ----------------------------------------------------------------------------
# Resize and centre crop against torchvision

torch = pytest.importorskip("torch")
F = pytest.importorskip("torchvision.transforms.v2.functional")

sides = st.integers(1, 300)


def torchvision_resized_shape(height, width, size):
    return tuple(F.resize(torch.zeros(1, height, width, dtype=torch.uint8), [size]).shape[1:])


def kcnn_resized_shape(height, width, size, at_least=None):
    image = tf.zeros((height, width, 1), tf.uint8)
    return tuple(ops.resize_shorter(image, size, at_least=at_least).shape[:2])


@settings(max_examples=40)
@given(height=sides, width=sides, size=st.integers(1, 64))
def test_resize_shorter_gives_torchvisions_size(height, width, size):
    assert kcnn_resized_shape(height, width, size) == \
        torchvision_resized_shape(height, width, size)


@settings(max_examples=40)
@given(height=sides, width=sides, size=st.integers(1, 64),
       at_least=st.tuples(st.integers(1, 80), st.integers(1, 80)))
# in floats, ceil(7 * (29 / 7)) is 30: a side one pixel longer than needed
@example(height=7, width=7, size=3, at_least=(29, 29))
@example(height=7, width=30, size=5, at_least=(29, 1))
def test_resize_shorter_grows_just_enough_for_the_crop(height, width, size, at_least):
    plain = torchvision_resized_shape(height, width, size)
    got = kcnn_resized_shape(height, width, size, at_least)
    min_height, min_width = at_least
    if plain[0] >= min_height and plain[1] >= min_width:
        assert got == plain
        return
    # the side that binds is exactly its minimum; the other keeps the aspect
    # ratio, rounded up so that the crop fits
    if min_height * width >= min_width * height:
        expected = (min_height, -(-width * min_height // height))
    else:
        expected = (-(-height * min_width // width), min_width)
    assert got == expected


@settings(max_examples=40)
@given(data=st.data(), height=st.integers(1, 40), width=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1))
def test_center_crop_takes_torchvisions_pixels(data, height, width, seed):
    crop = (data.draw(st.integers(1, height), label="crop height"),
            data.draw(st.integers(1, width), label="crop width"))
    image = np.random.default_rng(seed).integers(0, 256, (3, height, width), dtype=np.uint8)
    expected = F.center_crop(torch.from_numpy(image), list(crop)).numpy().transpose(1, 2, 0)
    got = ops.center_crop(tf.constant(image.transpose(1, 2, 0)), crop).numpy()
    np.testing.assert_array_equal(got, expected)
