"""kcnn's augmentations against torchvision.transforms.v2 itself, on real photos.

For fixed draws (an angle, a shift, factors, a box), each kcnn operation must give
torchvision's output: colour operations, flips and crops within 1/255; resizing and
bilinear geometry within a mean absolute error of 1/255 with at most 1% of the
pixels off by more than 2/255; nearest-neighbour geometry at most 1% of the pixels
different, since a source point exactly half-way between two pixels (or a float32
hair from it) picks either: TensorFlow and torch break that tie differently, and a
45-degree turn of the 86x128 photo puts 0.75% of its pixels exactly half-way (every
other case measured here: no pixel differs). MixUp and CutMix run torchvision's own
transforms with their draws fixed. The photos are scikit-learn's two sample images
(427x640); the geometry and colour tests run on them reduced 5x (86x128) once, to
stay fast; the weights' resize-and-crop runs on the full photos.
"""

import kcnn  # noqa: F401,I001  (first: it orders keras before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from kcnn.data import augment as ops

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_sample_images  # noqa: E402

PHOTOS = [np.asarray(p, np.uint8) for p in load_sample_images().images]  # china, flower
SMALL = [np.asarray(Image.fromarray(p).reduce(5)) for p in PHOTOS]
SEED = tf.constant([3, 7], tf.int64)
BILINEAR = v2.InterpolationMode.BILINEAR


def tv(image):
    """HWC numpy -> torchvision's CHW image."""
    return tv_tensors.Image(torch.from_numpy(np.array(image)).permute(2, 0, 1))


def hwc(tensor):
    return tensor.permute(1, 2, 0).numpy()


def levels(a, b):
    """Absolute differences in levels of 255 (float images are in [0, 1])."""
    scale = 1.0 if np.issubdtype(np.asarray(a).dtype, np.integer) else 255.0
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) * scale


def assert_exact(got, want, tolerance=1.0):
    """Within `tolerance` levels of 255 everywhere."""
    assert got.shape == want.shape
    diff = levels(got, want)
    assert diff.max() <= tolerance + 1e-4, f"max difference {diff.max():.3f}/255"


def assert_interpolated(got, want):
    """Mean absolute error <= 1/255, at most 1% of the values off by more than 2/255."""
    assert got.shape == want.shape
    diff = levels(got, want)
    assert diff.mean() <= 1.0, f"mean absolute error {diff.mean():.3f}/255"
    assert (diff > 2).mean() <= 0.01, f"{(diff > 2).mean():.2%} of values off by > 2/255"


def assert_nearest(got, want):
    """At most 1% of the pixels differ (see the module's docstring)."""
    assert got.shape == want.shape
    differ = np.any(got != want, axis=-1).mean()
    assert differ <= 0.01, f"{differ:.2%} of the pixels differ"


# ---------------------------------------------------------------------------
# Geometry: F.affine with fill 0 is what RandomAffine applies; F.rotate, RandomRotation.

AFFINES = [  # angle (clockwise), translate (px), scale, shear (x, y) degrees
    (30.0, (0, 0), 1.0, (0.0, 0.0)),
    (-12.0, (5, -3), 0.9, (8.0, -4.0)),
    (0.0, (0, 0), 1.2, (15.0, 0.0)),
]


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_affine_equals_torchvisions_f_affine(interpolation):
    mode = v2.InterpolationMode(interpolation)
    check = assert_nearest if interpolation == "nearest" else assert_interpolated
    for photo in SMALL:
        for angle, shift, scale, shear in AFFINES:
            got = ops.affine(tf.constant(photo), angle, shift, scale, shear,
                             interpolation).numpy()
            want = hwc(F.affine(tv(photo), angle=angle, translate=list(shift), scale=scale,
                                shear=list(shear), interpolation=mode, fill=0))
            check(got, want)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotate_equals_torchvisions_f_rotate(interpolation):
    mode = v2.InterpolationMode(interpolation)
    check = assert_nearest if interpolation == "nearest" else assert_interpolated
    for photo in SMALL:
        for angle in (30.0, -45.0, 90.0):
            got = ops.rotate(tf.constant(photo), angle, interpolation).numpy()
            want = hwc(F.rotate(tv(photo), angle, interpolation=mode, fill=0))
            check(got, want)


def test_random_affine_and_random_rotation_turn_as_torchvisions_for_one_sided_ranges():
    # RandomAffine hands its angle to F.affine (clockwise), RandomRotation to
    # F.rotate (counter-clockwise): a range of (30, 30) turns them opposite ways.
    photo = SMALL[0]
    affine = v2.RandomAffine(degrees=(30, 30), scale=(0.9, 0.9), shear=(10, 10, -5, -5),
                             interpolation=BILINEAR)
    got = ops.random_affine(tf.constant(photo), SEED, (30.0, 30.0), None, (0.9, 0.9),
                            (10.0, 10.0, -5.0, -5.0), "bilinear").numpy()
    assert_interpolated(got, hwc(affine(tv(photo))))
    rotation = v2.RandomRotation(degrees=(30, 30), interpolation=BILINEAR)
    turned = ops.random_rotation(tf.constant(photo), SEED, (30.0, 30.0), "bilinear").numpy()
    assert_interpolated(turned, hwc(rotation(tv(photo))))
    assert np.abs(turned.astype(int) - got.astype(int)).mean() > 20  # not the same turn


# ---------------------------------------------------------------------------
# Resizing: every weight's transforms() (shorter side, antialiased, centre crop).

@pytest.mark.parametrize("resize, crop, interpolation", [
    (256, 224, "bilinear"),  # AlexNet, VGG, ResNet V1, ...
    (232, 224, "bilinear"),  # ResNet-50 IMAGENET1K_V2 and the other V2 weights
    (256, 224, "bicubic"),  # EfficientNet-B0
])
def test_shorter_side_resize_and_centre_crop_equal_the_weights_transforms(resize, crop,
                                                                           interpolation):
    mode = v2.InterpolationMode(interpolation)
    for photo in PHOTOS:
        got = ops.center_crop(ops.resize_shorter(tf.constant(photo), resize, interpolation),
                              crop).numpy()
        want = F.center_crop(F.resize(tv(photo), resize, interpolation=mode, antialias=True),
                             crop)
        assert_interpolated(got, hwc(want))


@pytest.mark.parametrize("size", [(40, 60), (100, 170)])
def test_resize_to_a_size_equals_torchvisions_shrinking_and_growing(size):
    for photo in SMALL:
        got = ops.resize(tf.constant(photo), size).numpy()
        want = F.resize(tv(photo), list(size), interpolation=BILINEAR, antialias=True)
        assert_interpolated(got, hwc(want))


# ---------------------------------------------------------------------------
# Flips and crops: exact.

def test_flips_and_crops_equal_torchvisions():
    photo = SMALL[1]
    image = tf.constant(photo)
    assert_exact(ops.random_vertical_flip(image, SEED, p=1.0).numpy(),
                 hwc(v2.RandomVerticalFlip(p=1.0)(tv(photo))), 0)
    flips = {ops.random_flip(image, tf.constant([i, 0], tf.int64)).numpy().tobytes()
             for i in range(8)}
    assert flips == {photo.tobytes(), hwc(F.horizontal_flip(tv(photo))).tobytes()}
    assert_exact(ops.crop(image, 5, 7, 40, 50).numpy(), hwc(F.crop(tv(photo), 5, 7, 40, 50)),
                 0)
    for size in ((40, 50), (41, 51), (86, 1)):
        assert_exact(ops.center_crop(image, size).numpy(),
                     hwc(F.center_crop(tv(photo), list(size))), 0)


# ---------------------------------------------------------------------------
# Colour: the adjust_* functions on float images, ColorJitter and RandomGrayscale on
# uint8 (torchvision truncates to uint8 where kcnn rounds: within one level).

COLOUR = [
    (ops.adjust_brightness, F.adjust_brightness, (0.5, 1.4)),
    (ops.adjust_contrast, F.adjust_contrast, (0.6, 1.5)),
    (ops.adjust_saturation, F.adjust_saturation, (0.3, 1.8)),
    (ops.adjust_hue, F.adjust_hue, (-0.35, 0.2)),
]


@pytest.mark.parametrize("ours, theirs, factors", COLOUR,
                         ids=["brightness", "contrast", "saturation", "hue"])
def test_colour_adjustments_equal_torchvisions(ours, theirs, factors):
    for photo in SMALL:
        x = photo.astype(np.float32) / 255.0
        for factor in factors:
            got = ours(tf.constant(x), factor).numpy()
            want = hwc(theirs(tv(x), factor))
            assert_exact(got, want)


def test_color_jitter_and_grayscale_on_uint8_equal_torchvisions():
    photo = SMALL[0]
    image = tf.constant(photo)
    for name, bounds in (("brightness", (1.3, 1.3)), ("contrast", (0.7, 0.7)),
                         ("saturation", (1.6, 1.6)), ("hue", (0.1, 0.1))):
        got = ops.color_jitter(image, SEED, **{name: bounds}).numpy()
        want = hwc(v2.ColorJitter(**{name: bounds})(tv(photo)))
        assert_exact(got, want)
    assert_exact(ops.random_grayscale(image, SEED, p=1.0).numpy(),
                 hwc(v2.RandomGrayscale(p=1.0)(tv(photo))))


# ---------------------------------------------------------------------------
# Erasing, MixUp, CutMix on normalised float batches.

def batch():
    x = np.stack([p[:64, :96] for p in SMALL] + [p[10:74, 20:116] for p in SMALL])
    return (x.astype(np.float32) / 255.0 - 0.45) / 0.25


def test_erasing_a_given_box_equals_torchvisions_erase():
    images = batch()
    for value in (0.0, (0.5, -1.0, 2.0)):
        boxes = [(3, 4, 20, 30), (0, 0, 64, 10), (50, 80, 14, 16), (0, 0, 0, 0)]
        got = ops.erase(tf.constant(images), tf.constant(boxes), value).numpy()
        fill = torch.tensor(value, dtype=torch.float32).reshape(-1, 1, 1)
        want = [hwc(F.erase(tv(image), *box, v=fill)) for image, box in zip(images, boxes)]
        np.testing.assert_array_equal(got, np.stack(want))


class FixedBeta:
    """Stands in for MixUp's / CutMix's Beta distribution: always `lam`."""

    def __init__(self, lam):
        self.lam = lam

    def sample(self, shape):
        return torch.full(shape, self.lam)


@pytest.mark.parametrize("lam", [0.3, 0.82])
def test_mixup_equals_torchvisions_mixup_for_a_given_lambda(lam):
    images, labels = batch(), np.array([0, 2, 1, 2])
    mixup = v2.MixUp(alpha=0.2, num_classes=3)
    mixup._dist = FixedBeta(lam)
    want_images, want_labels = mixup(tv_tensors.Image(torch.from_numpy(images).permute(
        0, 3, 1, 2)), torch.from_numpy(labels))
    got_images, got_labels = ops.mixup_with(tf.constant(images), tf.one_hot(labels, 3), lam)
    np.testing.assert_allclose(got_images.numpy(), want_images.permute(0, 2, 3, 1).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(got_labels.numpy(), want_labels.numpy(), atol=1e-6)


@pytest.mark.parametrize("lam, centre", [(0.3, (20, 30)), (0.7, (2, 90)), (0.05, (63, 0))])
def test_cutmix_equals_torchvisions_cutmix_for_a_given_lambda_and_centre(lam, centre,
                                                                         monkeypatch):
    images, labels = batch(), np.array([0, 2, 1, 2])
    cutmix = v2.CutMix(alpha=1.0, num_classes=3)
    cutmix._dist = FixedBeta(lam)
    cy, cx = centre
    draws = iter([cx, cy])  # CutMix draws the column, then the row
    monkeypatch.setattr(torch, "randint", lambda high, size: torch.tensor([next(draws)]))
    want_images, want_labels = cutmix(tv_tensors.Image(torch.from_numpy(images).permute(
        0, 3, 1, 2)), torch.from_numpy(labels))
    got_images, got_labels = ops.cutmix_with(tf.constant(images), tf.one_hot(labels, 3),
                                             lam, cy, cx)
    np.testing.assert_array_equal(got_images.numpy(), want_images.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(got_labels.numpy(), want_labels.numpy(), atol=1e-6)
    assert not np.array_equal(got_images.numpy(), images)  # a box was pasted


# ---------------------------------------------------------------------------
# RandomResizedCrop: the resize of a given box, and the box draw.

@pytest.mark.parametrize("box, size", [((5, 7, 60, 90), (32, 48)),  # shrinking
                                       ((10, 20, 30, 40), (64, 80)),  # growing
                                       ((0, 0, 86, 128), (40, 40))])  # whole, squashed
def test_resized_crop_of_a_given_box_equals_torchvisions(box, size):
    for photo in SMALL:
        got = ops.resized_crop(tf.constant(photo), *box, size).numpy()
        want = F.resized_crop(tv(photo), *box, size=list(size), interpolation=BILINEAR,
                              antialias=True)
        assert_interpolated(got, hwc(want))


def test_resized_crop_box_draws_as_torchvisions_random_resized_crop():
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    seeds = tf.data.Dataset.range(300).map(lambda i: tf.stack([i, tf.constant(5, tf.int64)]))
    boxes = next(iter(seeds.map(lambda s: ops.resized_crop_box(86, 128, s, scale, ratio))
                      .batch(300))).numpy()
    again = ops.resized_crop_box(86, 128, tf.constant([7, 5], tf.int64), scale, ratio)
    np.testing.assert_array_equal(again.numpy(), boxes[7])  # the same seed, the same box
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 86).all() \
        and (left + w <= 128).all()
    # sides are whole pixels rounded from the drawn area and ratio: half a pixel each
    area = h * w / (86 * 128)
    assert (area >= scale[0] * 0.8).all() and (w / h >= ratio[0] * 0.9).all() \
        and (w / h <= ratio[1] / 0.9).all()
    assert len({tuple(b) for b in boxes}) > 250  # seeds differ, boxes differ
    # the same distribution as torchvision's draw: means and spreads of the area
    # share and the log aspect ratio (standard errors about 0.016 and 0.01)
    crop = v2.RandomResizedCrop(32, scale=scale, ratio=ratio)
    torch.manual_seed(0)
    theirs = [crop.make_params([tv(SMALL[0])]) for _ in range(300)]
    their_area = np.array([p["height"] * p["width"] for p in theirs]) / (86 * 128)
    their_log = np.log([p["width"] / p["height"] for p in theirs])
    assert abs(area.mean() - their_area.mean()) < 0.06
    assert abs(area.std() - their_area.std()) < 0.05
    assert abs(np.log(w / h).mean() - their_log.mean()) < 0.04
    assert abs(np.log(w / h).std() - their_log.std()) < 0.03


def test_resized_crop_box_falls_back_to_torchvisions_central_box():
    # No try fits: torchvision's fallback is deterministic, so the boxes are equal.
    for shape, scale in (((10, 200), (0.9, 1.0)),  # too wide for the ratio: 4/3 kept
                         ((200, 10), (0.9, 1.0)),  # too tall: 3/4 kept
                         ((30, 40), (1.5, 2.0))):  # too large an area: the whole image
        image = tv(np.zeros(shape + (3,), np.uint8))
        want = v2.RandomResizedCrop(8, scale=scale).make_params([image])
        got = ops.resized_crop_box(*shape, SEED, scale).numpy().tolist()
        assert got == [want["top"], want["left"], want["height"], want["width"]]
