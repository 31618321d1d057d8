"""kcnn.data.augment: each operation keeps shape, dtype and range, and does what it says."""

import kcnn  # noqa: F401,I001  (first: it orders keras before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from kcnn.data import Augment
from kcnn.data import augment as ops

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)


def seed(i):
    return tf.constant([i, 7], tf.int64)


def test_resize_shorter_side_keeps_aspect_and_dtype():
    out = ops.resize_shorter(tf.constant(IMAGE), 10)
    assert out.shape == (10, 15, 3) and out.dtype == tf.uint8
    tall = ops.resize_shorter(tf.constant(IMAGE.transpose(1, 0, 2)), 16)
    assert tall.shape == (24, 16, 3)  # floor(16 * 30 / 20)
    np.testing.assert_array_equal(ops.resize_shorter(tf.constant(IMAGE), 20), IMAGE)
    grown = ops.resize_shorter(tf.constant(IMAGE), 40)
    assert grown.shape == (40, 60, 3) and grown.dtype == tf.uint8


def test_resize_shorter_grows_until_a_non_square_crop_fits():
    assert ops.resize_shorter(tf.constant(IMAGE), 10, at_least=(12, 12)).shape == (12, 18, 3)
    assert ops.resize_shorter(tf.constant(IMAGE), 10, at_least=(8, 24)).shape == (16, 24, 3)
    assert ops.resize_shorter(tf.constant(IMAGE), 10, at_least=(8, 8)).shape == (10, 15, 3)


def test_resize_to_exact_size_and_interpolations():
    for method in ("bilinear", "nearest", "bicubic", "area"):
        out = ops.resize(tf.constant(IMAGE), (8, 9), method)
        assert out.shape == (8, 9, 3) and out.dtype == tf.uint8
    flat = np.full((20, 30, 3), 77, np.uint8)
    np.testing.assert_array_equal(ops.resize(tf.constant(flat), 7), np.full((7, 7, 3), 77))
    floats = ops.resize(tf.constant(IMAGE, tf.float32) / 255.0, 8)
    assert floats.dtype == tf.float32 and 0 <= float(tf.reduce_min(floats))


def test_center_crop_is_numpy_slicing():
    np.testing.assert_array_equal(ops.center_crop(tf.constant(IMAGE), 10), IMAGE[5:15, 10:20])
    # odd margins round like torchvision: round(3 / 2) = 2, round(5 / 2) = 2
    np.testing.assert_array_equal(ops.center_crop(tf.constant(IMAGE), (17, 25)),
                                  IMAGE[2:19, 2:27])


def test_ten_crop_corners_centre_and_their_reflections():
    crops = ops.ten_crop(tf.constant(IMAGE), (8, 12)).numpy()
    assert crops.shape == (10, 8, 12, 3) and crops.dtype == np.uint8
    expected = [IMAGE[:8, :12], IMAGE[:8, -12:], IMAGE[-8:, :12], IMAGE[-8:, -12:],
                IMAGE[6:14, 9:21]]
    for i, patch in enumerate(expected):
        np.testing.assert_array_equal(crops[i], patch)
        np.testing.assert_array_equal(crops[5 + i], patch[:, ::-1])


def find_window(image, patch):
    h, w = patch.shape[:2]
    return [(i, j) for i in range(image.shape[0] - h + 1) for j in range(image.shape[1] - w + 1)
            if np.array_equal(image[i:i + h, j:j + w], patch)]


def test_random_crop_is_a_window_fixed_by_the_seed():
    crops = [ops.random_crop(tf.constant(IMAGE), (12, 12), seed(i)).numpy() for i in range(6)]
    assert all(c.shape == (12, 12, 3) and c.dtype == np.uint8 for c in crops)
    positions = {tuple(find_window(IMAGE, c)[0]) for c in crops}
    assert len(positions) > 1  # different seeds, different places
    again = ops.random_crop(tf.constant(IMAGE), (12, 12), seed(0)).numpy()
    np.testing.assert_array_equal(again, crops[0])


def test_random_flip_is_identity_or_mirror_by_seed():
    outs = [ops.random_flip(tf.constant(IMAGE), seed(i)).numpy() for i in range(12)]
    flipped = [np.array_equal(o, IMAGE[:, ::-1]) for o in outs]
    same = [np.array_equal(o, IMAGE) for o in outs]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)


def test_random_shift_moves_by_at_most_n_pixels_and_fills_zero():
    image = np.zeros((16, 16, 1), np.uint8)
    image[6:10, 6:10] = 255
    moves = set()
    for i in range(20):
        out = ops.random_shift(tf.constant(image), 2, seed(i)).numpy()
        assert out.shape == image.shape and out.dtype == np.uint8
        rows, cols = np.nonzero(out[..., 0])
        moves.add((rows.min() - 6, cols.min() - 6))
        assert out.sum() == image.sum()  # the square only moved
    assert moves <= {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert len(moves) > 3


def test_pca_lighting_adds_one_small_colour_per_image():
    x = tf.constant(IMAGE, tf.float32) / 255.0 * 0.5 + 0.25  # away from the clip
    shifts = []
    for i in range(50):
        out = ops.pca_lighting(x, seed(i), std=0.1)
        assert out.shape == x.shape and out.dtype == tf.float32
        delta = (out - x).numpy()
        np.testing.assert_allclose(delta, np.broadcast_to(delta[0, 0], delta.shape), atol=1e-6)
        alpha = tf.random.stateless_normal([3], seed(i), stddev=0.1).numpy()
        expected = np.array(ops.IMAGENET_EIGVEC) @ (alpha * np.array(ops.IMAGENET_EIGVAL))
        np.testing.assert_allclose(delta[0, 0], expected, atol=1e-6)
        shifts.append(np.abs(delta[0, 0]).max())
    # the largest eigenvalue dominates: |shift| ~ 0.57 * 0.2175 * |N(0, 0.1)| ~ 0.01
    assert 0.003 < np.mean(shifts) < 0.03 and max(shifts) < 0.1
    clipped = ops.pca_lighting(tf.ones((4, 4, 3)), seed(0), std=5.0)
    assert 0.0 <= float(tf.reduce_min(clipped)) and float(tf.reduce_max(clipped)) <= 1.0


def test_to_channels_between_gray_rgb_and_alpha():
    gray = IMAGE[..., :1]
    rgb = ops.to_channels(tf.constant(gray), 3).numpy()
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.repeat(gray, 3, -1))
    luma = ops.to_channels(tf.constant(IMAGE), 1).numpy()
    expected = np.rint(IMAGE @ np.array([0.299, 0.587, 0.114]))[..., None]
    np.testing.assert_allclose(luma, expected, atol=1)
    rgba = np.concatenate([IMAGE, np.full((20, 30, 1), 9, np.uint8)], -1)
    np.testing.assert_array_equal(ops.to_channels(tf.constant(rgba), 3), IMAGE)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    def unknown_channels(image):
        return ops.to_channels(image, 3)

    np.testing.assert_array_equal(unknown_channels(tf.constant(gray)), np.repeat(gray, 3, -1))
    np.testing.assert_array_equal(unknown_channels(tf.constant(rgba)), IMAGE)
    with pytest.raises(ValueError, match="channels=2"):
        ops.to_channels(tf.constant(IMAGE), 2)


def test_normalize_follows_the_preprocessing_record():
    record = {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
              "resize": 256, "crop": 224, "interpolation": "bilinear"}
    out = ops.normalize(tf.constant(IMAGE), record)
    assert out.dtype == tf.float32
    expected = (IMAGE / 255.0 - np.array(record["mean"])) / np.array(record["std"])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_augment_switches_are_checked():
    assert Augment() == Augment(crop=True, flip=True, pca_lighting=0.0, shift=0)
    assert Augment(pca_lighting=True).pca_lighting == 0.1
    with pytest.raises(ValueError, match="shift=-1"):
        Augment(shift=-1)
    with pytest.raises(ValueError, match="pca_lighting='yes'"):
        Augment(pca_lighting="yes")
    with pytest.raises(ValueError, match="crop=1"):
        Augment(crop=1)
