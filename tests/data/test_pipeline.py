"""kcnn.data pipelines: batches of the right shape, repeatable, and a model trains on them."""

import kcnn  # noqa: F401,I001  (first: it orders keras before TensorFlow)
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kcnn.data import Augment, eval_pipeline, load, load_digits, mean_std, train_pipeline
from tests.data import make_image_folder

DIGITS = {"scale": 1 / 255, "mean": [0.3], "std": [0.33], "resize": None, "crop": 28,
          "interpolation": "bilinear"}
IMAGENET = {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "resize": 36, "crop": 32, "interpolation": "bilinear"}


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits()[0]
    return load((x[:96], y[:96]))


@pytest.fixture
def folder(tmp_path):
    make_image_folder(tmp_path, corrupt=False)
    return load(tmp_path)


def batches(ds, epochs=1):
    return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(epochs)]


def same(a, b):
    return all(np.array_equal(xa, xb) and np.array_equal(ya, yb)
               for (xa, ya), (xb, yb) in zip(a, b, strict=True))


def test_train_batches_are_float32_images_and_int64_labels(digits):
    ds = train_pipeline(digits, DIGITS, batch_size=32,
                        augment=Augment(crop=False, flip=False, shift=2))
    got = batches(ds)[0]
    assert len(got) == 3
    x, y = got[0]
    assert x.shape == (32, 28, 28, 1) and x.dtype == np.float32
    assert y.shape == (32,) and y.dtype == np.int64
    assert np.isclose(x.min(), -0.3 / 0.33, atol=1e-5) and x.max() <= (1 - 0.3) / 0.33 + 1e-5


def test_rgb_pipeline_resizes_varied_sizes_then_crops(folder):
    ds = train_pipeline(folder, IMAGENET, batch_size=4, augment=Augment(pca_lighting=0.1))
    got = batches(ds)[0]
    assert len(got) == 3 and all(x.shape == (4, 32, 32, 3) for x, _ in got)
    lowest = (0 - np.array(IMAGENET["mean"])) / np.array(IMAGENET["std"])
    highest = (1 - np.array(IMAGENET["mean"])) / np.array(IMAGENET["std"])
    x = np.concatenate([x for x, _ in got])
    assert np.all(x >= lowest - 1e-5) and np.all(x <= highest + 1e-5)


def test_pca_lighting_shifts_each_image_by_one_small_colour(folder):
    def make(lighting):
        return train_pipeline(folder, IMAGENET, batch_size=12, seed=3,
                              augment=Augment(pca_lighting=lighting))

    (plain, labels), = batches(make(0.0))[0]
    (lit, lit_labels), = batches(make(0.1))[0]
    np.testing.assert_array_equal(labels, lit_labels)  # same order, same crops
    shift = (lit - plain) * np.array(IMAGENET["std"])  # back to [0, 1] pixels
    inside = (plain * np.array(IMAGENET["std"]) + np.array(IMAGENET["mean"]) > 0.1) & \
        (plain * np.array(IMAGENET["std"]) + np.array(IMAGENET["mean"]) < 0.9)
    for i in range(12):  # away from the clip, one RGB offset per image
        per_channel = [shift[i][..., c][inside[i][..., c]] for c in range(3)]
        assert all(np.ptp(v) < 1e-4 for v in per_channel)
        assert 0 < max(abs(v[0]) for v in per_channel) < 0.1
    assert np.abs(shift).max() > 1e-3


def test_mocked_tfds_tiny_images_are_resized_before_cropping():
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        source = load("imagenet2012")
        train = batches(train_pipeline(source, IMAGENET, batch_size=4))[0]
        test = batches(eval_pipeline(source, IMAGENET, batch_size=3))[0]
    assert [x.shape for x, _ in train] == [(4, 32, 32, 3)] * 2
    assert [x.shape for x, _ in test] == [(3, 32, 32, 3), (3, 32, 32, 3), (2, 32, 32, 3)]


def test_same_seed_same_batches_every_epoch_differs(folder):
    def make(seed, cache=False):
        return train_pipeline(folder, IMAGENET, batch_size=4, seed=seed, cache=cache,
                              augment=Augment(pca_lighting=0.1))

    first = batches(make(1), epochs=2)
    assert same(first[0], batches(make(1))[0])
    assert same(first[1], batches(make(1), epochs=2)[1])
    assert not same(first[0], first[1])  # new order and new crops each epoch
    assert not same(first[0], batches(make(2))[0])
    # caching decoded images changes where they are stored, not what comes out
    assert same(first[0], batches(make(1, cache=True))[0])


def test_no_augmentation_is_the_centre_crop_of_evaluation(digits):
    train = batches(train_pipeline(digits, IMAGENET, batch_size=96, augment=None,
                                   shuffle_buffer=1, channels=3))[0]
    test = batches(eval_pipeline(digits, IMAGENET, batch_size=96, channels=3))[0]
    assert same(train, test)
    assert train[0][0].shape == (96, 32, 32, 3)


def test_channels_first_layout(digits, channels_first):
    train = batches(train_pipeline(digits, DIGITS, batch_size=16))[0]
    assert train[0][0].shape == (16, 1, 28, 28)
    ten = batches(eval_pipeline(digits, IMAGENET, batch_size=8, ten_crop=True))[0]
    assert ten[0][0].shape == (8, 10, 3, 32, 32)
    keras.config.set_image_data_format("channels_last")
    last = batches(eval_pipeline(digits, IMAGENET, batch_size=8, ten_crop=True))[0]
    np.testing.assert_array_equal(ten[0][0], last[0][0].transpose(0, 1, 4, 2, 3))


def test_ten_crop_centre_is_the_evaluation_crop(folder):
    ten = batches(eval_pipeline(folder, IMAGENET, batch_size=5, ten_crop=True))[0]
    centre = batches(eval_pipeline(folder, IMAGENET, batch_size=5))[0]
    assert ten[0][0].shape == (5, 10, 32, 32, 3) and ten[0][1].shape == (5,)
    for (x10, y10), (x, y) in zip(ten, centre, strict=True):
        np.testing.assert_array_equal(x10[:, 4], x)
        np.testing.assert_array_equal(x10[:, 9], x[:, :, ::-1])
        np.testing.assert_array_equal(y10, y)


def test_non_square_crop_fits_every_image(folder):
    record = {**IMAGENET, "resize": 20, "crop": [16, 40]}
    train = batches(train_pipeline(folder, record, batch_size=6))[0]
    test = batches(eval_pipeline(folder, record, batch_size=6, ten_crop=True))[0]
    assert [x.shape for x, _ in train] == [(6, 16, 40, 3)] * 2
    assert [x.shape for x, _ in test] == [(6, 10, 16, 40, 3)] * 2


def test_one_hot_labels_and_channel_conversion(folder):
    ds = train_pipeline(folder, DIGITS, batch_size=6, one_hot=True)
    x, y = batches(ds)[0][0]
    assert x.shape == (6, 28, 28, 1)  # RGB source, grayscale model
    assert y.shape == (6, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(1), np.ones(6))


def test_plain_tf_dataset_input_and_drop_remainder():
    images = np.random.default_rng(0).integers(0, 256, (10, 28, 28, 1), dtype=np.uint8)
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(10) % 2))
    assert len(batches(train_pipeline(ds, DIGITS, batch_size=4))[0]) == 2
    assert len(batches(eval_pipeline(ds, DIGITS, batch_size=4))[0]) == 3
    with pytest.raises(ValueError, match="needs num_classes"):
        train_pipeline(ds, DIGITS, batch_size=4, one_hot=True)


def test_pipeline_errors_name_the_argument(digits):
    with pytest.raises(ValueError, match="batch_size=0"):
        train_pipeline(digits, DIGITS, batch_size=0)
    with pytest.raises(ValueError, match="pca_lighting works on RGB"):
        train_pipeline(digits, DIGITS, batch_size=4, augment=Augment(pca_lighting=0.1))
    with pytest.raises(ValueError, match="resize.*>= the crop"):
        eval_pipeline(digits, {**IMAGENET, "resize": 16}, batch_size=4)
    with pytest.raises(ValueError, match="preprocessing must be"):
        eval_pipeline(digits, {"size": 28}, batch_size=4)
    with pytest.raises(ValueError, match=r"preprocessing\['mean'\] must have 1 or 3"):
        eval_pipeline(digits, {**IMAGENET, "mean": [0.5, 0.5]}, batch_size=4)
    with pytest.raises(ValueError, match="data must be"):
        eval_pipeline(np.zeros((4, 8, 8)), DIGITS, batch_size=4)


def test_mean_std_of_the_digits_matches_numpy():
    (x, _), _ = load_digits()
    mean, std = mean_std(load("digits"))
    np.testing.assert_allclose(mean, [x.mean() / 255], rtol=1e-6)
    np.testing.assert_allclose(std, [x.std() / 255], rtol=1e-6)
    sample_mean, _ = mean_std(load("digits"), max_examples=200)
    assert abs(sample_mean[0] - mean[0]) < 0.05


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_a_keras_model_fits_one_epoch_on_a_pipeline(folder, layout):
    keras.config.set_image_data_format(layout)
    train = train_pipeline(folder, IMAGENET, batch_size=4, one_hot=True)
    test = eval_pipeline(folder, IMAGENET, batch_size=4, drop_remainder=True)
    shape = (32, 32, 3) if layout == "channels_last" else (3, 32, 32)
    model = keras.Sequential([
        keras.Input(shape),
        keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(test, verbose=0).shape == (12, 3)
