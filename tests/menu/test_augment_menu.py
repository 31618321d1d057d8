"""torchvision's augmentation menu in kcnn.data: each op keeps shape, dtype and range,
repeats with its seed, does what torchvision's does; MixUp/CutMix, the preview, the CLI."""

import colorsys

import kcnn  # noqa: F401,I001  (first: it orders keras before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from kcnn.data import Augment, load, load_digits, train_pipeline
from kcnn.data import augment as ops
from kcnn.data import pipeline
from kcnn.cli import build_parser
from kcnn.cli import train as train_command

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
IMAGENET = {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "resize": 36, "crop": 32, "interpolation": "bilinear"}


def seed(i):
    return tf.constant([i, 11], tf.int64)


# Each per-example op with settings that change the image most of the time.
OPS = {
    "vertical_flip": lambda x, s: ops.random_vertical_flip(x, s, 0.8),
    "rotation": lambda x, s: ops.random_rotation(x, s, 30),
    "affine": lambda x, s: ops.random_affine(x, s, (-10, 10), (0.2, 0.1), (0.8, 1.2),
                                             (-5, 5, -5, 5), "bilinear"),
    "color_jitter": lambda x, s: ops.color_jitter(x, s, (0.6, 1.4), (0.6, 1.4), (0.6, 1.4),
                                                  (-0.1, 0.1)),
    "grayscale": lambda x, s: ops.random_grayscale(x, s, 0.8),
    "erasing": lambda x, s: ops.random_erasing(x, s, 0.9),
}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_each_op_keeps_shape_dtype_range_and_repeats_with_its_seed(name, dtype):
    image = tf.constant(IMAGE) if dtype == "uint8" else tf.constant(IMAGE / 255.0, tf.float32)
    outs = [OPS[name](image, seed(i)).numpy() for i in range(8)]
    top = 255 if dtype == "uint8" else 1.0
    for out in outs:
        assert out.shape == IMAGE.shape and out.dtype == dtype
        assert out.min() >= 0 and out.max() <= top
    np.testing.assert_array_equal(OPS[name](image, seed(3)).numpy(), outs[3])
    assert sum(not np.array_equal(out, image.numpy()) for out in outs) >= 2
    assert len({out.tobytes() for out in outs}) >= 2  # seeds differ, results differ


def test_rotation_by_90_degrees_is_a_quarter_turn_counter_clockwise():
    square = RNG.integers(0, 256, (9, 9, 3), dtype=np.uint8)
    out = ops.random_rotation(tf.constant(square), seed(0), (90, 90)).numpy()
    np.testing.assert_array_equal(out, np.rot90(square))


def test_translation_moves_by_whole_pixels_within_the_fraction():
    image = np.zeros((20, 30, 1), np.uint8)
    image[8:12, 12:18] = 200
    moves = set()
    for i in range(12):
        out = ops.random_affine(tf.constant(image), seed(i), translate=(0.2, 0.1)).numpy()
        rows, cols = np.nonzero(out[..., 0])
        dy, dx = rows.min() - 8, cols.min() - 12
        np.testing.assert_array_equal(out, np.roll(image, (dy, dx), axis=(0, 1)))
        assert abs(dx) <= 6 and abs(dy) <= 2
        moves.add((dy, dx))
    assert len(moves) > 3


def test_brightness_contrast_saturation_blend_as_torchvision():
    x = tf.constant(IMAGE / 255.0, tf.float32)
    gray = (IMAGE / 255.0) @ np.array([0.299, 0.587, 0.114])
    bright = ops.color_jitter(x, seed(0), brightness=(1.3, 1.3)).numpy()
    np.testing.assert_allclose(bright, np.clip(IMAGE / 255.0 * 1.3, 0, 1), atol=1e-6)
    contrast = ops.color_jitter(x, seed(0), contrast=(0.5, 0.5)).numpy()
    np.testing.assert_allclose(contrast, 0.5 * IMAGE / 255.0 + 0.5 * gray.mean(), atol=1e-6)
    gray_out = ops.color_jitter(x, seed(0), saturation=(0.0, 0.0)).numpy()
    np.testing.assert_allclose(gray_out, np.repeat(gray[..., None], 3, -1), atol=1e-6)


def test_hue_rotates_the_colour_circle():
    x = IMAGE[:4, :4] / 255.0
    out = ops.color_jitter(tf.constant(x, tf.float32), seed(0), hue=(0.25, 0.25)).numpy()
    for rgb, got in zip(x.reshape(-1, 3), out.reshape(-1, 3)):
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        np.testing.assert_allclose(got, colorsys.hsv_to_rgb((h + 0.25) % 1.0, s, v),
                                   atol=2e-3)


def test_grayscale_and_vertical_flip_at_probability_0_and_1():
    image = tf.constant(IMAGE)
    gray = ops.random_grayscale(image, seed(0), 1.0).numpy()
    assert (gray == gray[..., :1]).all() and not (IMAGE == IMAGE[..., :1]).all()
    np.testing.assert_array_equal(ops.random_grayscale(image, seed(0), 0.0), IMAGE)
    np.testing.assert_array_equal(ops.random_vertical_flip(image, seed(0), 1.0), IMAGE[::-1])
    np.testing.assert_array_equal(ops.random_vertical_flip(image, seed(0), 0.0), IMAGE)


def test_erasing_boxes_follow_scale_and_ratio():
    for i in range(30):
        top, left, h, w = ops.erasing_box(40, 60, seed(i), 1.0, (0.05, 0.2),
                                          (0.5, 2.0)).numpy()
        assert h > 0 and w > 0 and top + h <= 40 and left + w <= 60
        assert 0.04 <= h * w / 2400 <= 0.22 and 0.4 <= h / w <= 2.5  # up to rounding
    assert ops.erasing_box(40, 60, seed(0), 0.0).numpy().tolist() == [0, 0, 0, 0]
    # no try fits (every box taller than the image): nothing erased, no failing draw
    assert ops.erasing_box(10, 10, seed(1), 1.0, (0.9, 1.0), (3.0, 3.3)).numpy().tolist() \
        == [0, 0, 0, 0]
    out = ops.random_erasing(tf.constant(IMAGE), seed(5), 1.0, value=7).numpy()
    changed = np.any(out != IMAGE, axis=-1)
    rows, cols = np.nonzero(changed)
    assert (out[rows.min():rows.max() + 1, cols.min():cols.max() + 1] == 7).all()


def test_mixup_mixes_images_and_labels_in_one_proportion():
    images = tf.constant(RNG.random((6, 4, 4, 3)), tf.float32)
    labels = tf.one_hot([0, 1, 2, 0, 1, 2], 3)
    mixed, mixed_labels = ops.mixup(images, labels, seed(1), alpha=1.0)
    mixed, mixed_labels = mixed.numpy(), mixed_labels.numpy()
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
    lam = mixed_labels[1, 1]  # image 1 (class 1) mixed with image 0 (class 0)
    assert 0 < lam < 1
    expected = lam * images.numpy() + (1 - lam) * np.roll(images.numpy(), 1, axis=0)
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-6)


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area():
    images = tf.constant(np.arange(4, dtype=np.float32)[:, None, None, None]
                         * np.ones((4, 10, 10, 1), np.float32))
    labels = tf.one_hot([0, 1, 2, 3], 4)
    for i in range(5):
        mixed, mixed_labels = ops.cutmix(images, labels, seed(i), alpha=1.0)
        mixed, mixed_labels = mixed.numpy(), mixed_labels.numpy()
        np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
        pasted = np.mean(mixed[1] == 0.0)  # image 1 takes the box from image 0
        np.testing.assert_allclose(mixed_labels[1], [pasted, 1 - pasted, 0, 0], atol=1e-6)


def test_the_full_menu_in_a_pipeline_repeats_with_its_seed():
    images = RNG.integers(0, 256, (8, 40, 36, 3), dtype=np.uint8)
    source = load((images, np.arange(8) % 3))
    menu = Augment(vertical_flip=True, rotation=20, translate=0.1, scale=(0.9, 1.1),
                   shear=5, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                   grayscale=True, pca_lighting=0.1, erasing=True, erasing_value="random",
                   mixup=0.4, cutmix=1.0)

    def batches(seed, epochs=1):
        ds = train_pipeline(source, IMAGENET, batch_size=4, augment=menu, seed=seed,
                            one_hot=True)
        return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(epochs)]

    first = batches(1, epochs=2)
    again = batches(1)[0]
    for (x, y), (x2, y2) in zip(first[0], again, strict=True):
        assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and np.isfinite(x).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(first[0][0][0], first[1][0][0])  # each epoch differs
    assert not np.array_equal(first[0][0][0], batches(2)[0][0][0])


def test_erasing_fills_with_the_value_in_normalised_units():
    (x, y), _ = load_digits()
    record = {"scale": 1 / 255, "mean": [0.3], "std": [0.33], "resize": None, "crop": 28}
    ds = train_pipeline(load((x[:32], y[:32])), record, batch_size=32, seed=0,
                        augment=Augment(crop=False, flip=False, erasing=1.0,
                                        erasing_value=-5.0))
    images = next(iter(ds))[0].numpy()
    assert (images == -5.0).any(axis=(1, 2, 3)).mean() > 0.9  # below any pixel's value


@pytest.mark.parametrize("kwargs, message", [
    ({"rotation": -5}, r"Augment.rotation in degrees must be >= 0 .*rotation=-5"),
    ({"vertical_flip": 1.5}, r"Augment.vertical_flip is a probability .*\[0, 1\]"),
    ({"grayscale": -0.1}, r"Augment.grayscale is a probability"),
    ({"erasing": 2}, r"Augment.erasing is a probability .*erasing=2"),
    ({"hue": 0.6}, r"Augment.hue must be in \[0, 0.5\].*hue=0.6"),
    ({"brightness": -1}, r"Augment.brightness must be >= 0"),
    ({"scale": (1.2, 0.8)}, r"Augment.scale must be a pair \(min, max\) with min <= max"),
    ({"translate": (0.1, 1.5)}, r"Augment.translate must be \(a, b\)"),
    ({"shear": (1, 2, 3)}, r"Augment.shear must be a pair"),
    ({"erasing_ratio": (0, 2)}, r"Augment.erasing_ratio must be a pair"),
    ({"erasing_value": "mean"}, r"Augment.erasing_value must be a number"),
    ({"mixup": -1}, r"Augment.mixup is the Beta distribution's alpha"),
    ({"interpolation": "cubic"}, r"Augment.interpolation must be 'nearest' or 'bilinear'"),
    ({"autoaugment": "imagenet1k"}, r"Augment.autoaugment must be True .*'cifar10'.*"
                                    r"autoaugment='imagenet1k'"),
    ({"randaugment": (2, 31)}, r"Augment.randaugment .*0 <= magnitude < num_magnitude_bins"),
    ({"randaugment": (0, 9)}, r"Augment.randaugment .*num_ops >= 1.*randaugment=\(0, 9\)"),
    ({"randaugment": 2}, r"Augment.randaugment must be True"),
    ({"trivialaugment": 1}, r"Augment.trivialaugment must be True or False"),
    ({"trivialaugment": True, "autoaugment": "svhn"},
     r"one policy at a time; received autoaugment='svhn' and trivialaugment=True"),
    ({"resized_crop": (0.0, 1.0)}, r"Augment.resized_crop must be a pair .*> 0.0, <= 1.0"),
    ({"resized_crop": (0.5, 0.2)}, r"Augment.resized_crop must be a pair .*min <= max"),
    ({"resized_crop_ratio": (0, 1)}, r"Augment.resized_crop_ratio must be a pair"),
])
def test_bad_augment_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augment(**kwargs)


def test_pipeline_refuses_what_the_images_or_labels_cannot_take():
    (x, y), _ = load_digits()
    source = load((x[:8], y[:8]))
    record = {"scale": 1 / 255, "mean": [0.3], "std": [0.33], "resize": None, "crop": 28}
    with pytest.raises(ValueError, match=r"Augment.saturation works on RGB images"):
        train_pipeline(source, record, batch_size=4, augment=Augment(saturation=0.4))
    with pytest.raises(ValueError, match=r"mixup=0.2 .* needs one_hot=True"):
        train_pipeline(source, record, batch_size=4, augment=Augment(mixup=0.2))


def test_options_as_the_command_line_writes_them():
    augment = ops.resolve("rotation=15 scale=0.9,1.1 erasing mixup=0.2 flip=false")
    assert augment == Augment(rotation=15, scale=(0.9, 1.1), erasing=True, mixup=0.2,
                              flip=False)
    assert augment.rotation == (-15.0, 15.0) and augment.erasing == 0.5
    base = Augment(crop=False, flip=False, shift=2)
    assert ops.resolve({"rotation": 10}, base) == Augment(crop=False, flip=False, shift=2,
                                                          rotation=10)
    assert ops.resolve(False) == Augment(crop=False, flip=False)
    with pytest.raises(ValueError, match=r"augment has no option 'rotate'. Did you mean "
                                         r"'rotation'"):
        ops.resolve(["rotate=15"])


def test_policies_and_resized_crop_as_the_command_line_writes_them():
    assert ops.resolve("autoaugment").autoaugment == "imagenet"
    assert ops.resolve("autoaugment=svhn").autoaugment == "svhn"
    assert ops.resolve("randaugment").randaugment == (2, 9, 31)  # torchvision's defaults
    assert ops.resolve("randaugment=3,12").randaugment == (3, 12, 31)
    assert ops.resolve("randaugment=1,5,11").randaugment == (1, 5, 11)
    trivial = ops.resolve("trivialaugment interpolation=bilinear")
    assert trivial.trivialaugment is True and trivial.policy == "trivialaugment"
    assert Augment().policy is None
    # a policy given replaces the base's (a recipe's TrivialAugment, say)
    assert ops.resolve("randaugment", trivial).policy == "randaugment"
    assert ops.resolve("resized_crop").resized_crop == (0.08, 1.0)
    crop = ops.resolve("resized_crop=0.25,1 resized_crop_ratio=0.5,2")
    assert crop.resized_crop == (0.25, 1.0) and crop.resized_crop_ratio == (0.5, 2.0)
    assert Augment(resized_crop=False).resized_crop is None


def test_preview_writes_a_png_grid_of_what_the_model_sees(tmp_path):
    from PIL import Image

    grid = pipeline.preview("digits", tmp_path / "preview.png", n=10,
                            augment="rotation=20 erasing crop=false flip=false")
    # 28x28 digits scaled by 4 to 112 pixels, 4 columns and 3 rows, 2-pixel gaps
    assert grid.shape == (3 * 114 + 2, 4 * 114 + 2, 3) and grid.dtype == np.uint8
    with Image.open(tmp_path / "preview.png") as image:
        assert image.format == "PNG" and image.size == (458, 344)
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), grid)
    cells = [grid[2:114, 2 + 114 * i:114 * (i + 1)] for i in range(4)]
    assert all(cell.std() > 10 for cell in cells)  # digits, not blank cells
    assert np.all(grid[-2:] == 255)  # the gap below the last row
    with pytest.raises(ValueError, match=r"path must be a file name ending in .png"):
        pipeline.preview("digits", tmp_path / "preview.jpg")


def test_preview_command(tmp_path, capsys):
    parser = build_parser()
    out = tmp_path / "p.png"
    args = parser.parse_args(["preview", "--augment", "rotation=10", "mixup", "-n", "4",
                              "--out", str(out)])
    assert args.run(args) == 0
    assert out.exists() and "wrote" in capsys.readouterr().out


def test_train_options_from_the_command_line():
    parser = build_parser()
    args = parser.parse_args(["train", "lenet5", "--augment", "rotation=15", "cutmix",
                              "--schedule", "multistep", "milestones=3,6", "gamma=0.5",
                              "--loss", "focal", "gamma=1", "--label-smoothing", "0.1",
                              "--class-weight", "balanced", "--init", "torchvision"])
    options = train_command.menu(args)
    assert options == {"augment": ["rotation=15", "cutmix"],
                       "schedule": {"name": "multistep", "milestones": (3, 6), "gamma": 0.5},
                       "loss": {"name": "focal", "gamma": 1}, "label_smoothing": 0.1,
                       "class_weight": "balanced", "init": "torchvision"}
    plain = train_command.menu(parser.parse_args(["train", "lenet5", "--schedule",
                                                  "cosine"]))
    assert plain["schedule"] == "cosine" and plain["augment"] is None


SMALL_SOURCE = load((RNG.integers(0, 256, (4, 24, 30, 3), dtype=np.uint8), np.arange(4) % 2))
SMALL_RECORD = {**IMAGENET, "resize": 20, "crop": 16}


def first_batch(augment, seed=0, **kwargs):
    ds = train_pipeline(SMALL_SOURCE, SMALL_RECORD, batch_size=4, augment=augment, seed=seed,
                        **kwargs)
    return next(iter(ds))[0].numpy()


@pytest.mark.parametrize("policy", ["trivialaugment", "randaugment=3,15", "autoaugment"])
def test_a_pipeline_with_each_policy_repeats_with_its_seed(policy):
    # One pipeline, passes keyed by the epoch alone: the same epoch twice must
    # give the same batch, in order; another epoch other draws (as a set of
    # images, since the order changes too).
    order = pipeline.EpochOrder()
    ds = train_pipeline(SMALL_SOURCE, SMALL_RECORD, batch_size=4, seed=0, epoch_order=order,
                        augment=ops.resolve(f"{policy} flip=false crop=false"))
    first, again = next(iter(ds))[0].numpy(), next(iter(ds))[0].numpy()
    order.epoch.assign(1)
    later = next(iter(ds))[0].numpy()
    assert first.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(first, again)
    plain = {ops.normalize(ops.center_crop(ops.resize_shorter(image, 20), 16),
                           SMALL_RECORD).numpy().tobytes() for image, _ in SMALL_SOURCE.dataset}
    assert {x.tobytes() for x in first} != plain  # the policy changed images
    assert {x.tobytes() for x in first} != {x.tobytes() for x in later}


def test_crop_size_sets_the_training_crop_and_the_resized_crop_cuts_the_original():
    assert first_batch(Augment(), crop_size=12).shape == (4, 12, 12, 3)
    assert first_batch(Augment(), crop_size=(24, 22)).shape == (4, 24, 22, 3)  # > resize
    # The whole image (area share 1, its own aspect ratio 30/24) resized to the
    # crop in one step: equal to resizing the original, which resizing it to
    # the record's 20 first and then again would not be.
    whole = Augment(flip=False, resized_crop=(1.0, 1.0), resized_crop_ratio=(1.25, 1.25))
    images = [image for image, _ in SMALL_SOURCE.dataset]
    want = {ops.normalize(ops.resize(image, (8, 10)), SMALL_RECORD).numpy().tobytes()
            for image in images}
    twice = {ops.normalize(ops.resize(ops.resize_shorter(image, 20), (8, 10)),
                           SMALL_RECORD).numpy().tobytes() for image in images}
    assert not want & twice
    for cache in (False, True):  # in the shuffled order
        got = first_batch(whole, crop_size=(8, 10), cache=cache)
        assert got.shape == (4, 8, 10, 3) and {x.tobytes() for x in got} == want
    for bad in (0, (16,), 1.5, True):
        with pytest.raises(ValueError, match=r"crop_size must be None .*received crop_size="):
            first_batch(Augment(), crop_size=bad)
