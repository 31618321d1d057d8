"""kcnn.data.load: digits, image folders, arrays and tensorflow-datasets, offline."""

import os
import struct
import warnings
import zlib

import kcnn  # noqa: F401,I001  (first: it orders keras before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kcnn.data import Source, eval_pipeline, load, load_digits, train_pipeline
from tests.data import make_image_folder, write_image


def examples(source):
    return [(x.numpy(), int(y.numpy())) for x, y in source.dataset]


def check_examples(source, channels):
    spec = source.dataset.element_spec
    assert spec[0].dtype == tf.uint8 and spec[1].dtype == tf.int64
    assert spec[0].shape.rank == 3 and spec[0].shape[-1] == channels
    for image, label in examples(source):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == channels
        assert 0 <= label < source.num_classes


# ---------------------------------------------------------------------------- digits


def test_digits_splits_are_load_digits_80_20():
    (x_train, y_train), (x_test, y_test) = load_digits()
    train, test = load("digits"), load("digits", split="test")
    assert isinstance(train, Source) and train.channels == 1
    assert train.class_names == tuple("0123456789")
    assert (train.num_examples, test.num_examples) == (1437, 360)
    image, label = next(iter(test.dataset))
    np.testing.assert_array_equal(image.numpy(), x_test[0])
    assert label.dtype == tf.int64 and int(label) == y_test[0]
    assert load("digits", split="all").num_examples == 1797


def test_digits_validation_split_is_stratified_disjoint_and_seeded():
    train = load("digits", validation_split=0.25, seed=1)
    val = load("digits", split="validation", validation_split=0.25, seed=1)
    assert train.num_examples + val.num_examples == 1437
    val_labels = [y for _, y in examples(val)]
    assert np.bincount(val_labels).min() >= 30  # every class held out
    train_images = {x.tobytes() for x, _ in examples(train)}
    assert not any(x.tobytes() in train_images for x, _ in examples(val))
    again = load("digits", split="validation", validation_split=0.25, seed=1)
    other = load("digits", split="validation", validation_split=0.25, seed=2)
    first = [x.tobytes() for x, _ in examples(val)]
    assert first == [x.tobytes() for x, _ in examples(again)]
    assert first != [x.tobytes() for x, _ in examples(other)]


def test_digits_converted_to_rgb_on_request():
    source = load("digits", split="test", channels=3)
    image, _ = next(iter(source.dataset))
    assert source.channels == 3 and image.shape == (28, 28, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


# ---------------------------------------------------------------------------- folders


def test_folder_sorted_classes_mixed_gray_rgb_and_a_corrupt_file_reported(tmp_path):
    bad = make_image_folder(tmp_path)
    with pytest.warns(UserWarning, match="broken.jpg"):
        source = load(tmp_path)
    assert source.class_names == ("cats", "dogs", "fish")
    assert source.channels == 3 and source.num_examples == 12  # the corrupt file skipped
    check_examples(source, 3)
    shapes = {x.shape for x, _ in examples(source)}
    assert (20, 30, 3) in shapes and (23, 28, 3) in shapes  # sizes kept as they are
    assert sorted(y for _, y in examples(source)) == [0] * 4 + [1] * 4 + [2] * 4
    assert os.path.exists(bad)  # reported, not deleted


def test_folder_of_grayscale_images_is_one_channel_unless_asked(tmp_path):
    make_image_folder(tmp_path, corrupt=False, gray_only=True)
    check_examples(load(tmp_path), 1)
    check_examples(load(tmp_path, channels=3), 3)


def test_folder_converted_to_grayscale(tmp_path):
    make_image_folder(tmp_path, corrupt=False)
    check_examples(load(tmp_path, channels=1), 1)


def test_folder_header_check_names_and_skips_a_truncated_jpeg(tmp_path):
    make_image_folder(tmp_path, corrupt=False, per_class=2)
    good = tmp_path / "fish" / "fish0.jpg"
    (tmp_path / "fish" / "truncated.jpg").write_bytes(good.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="truncated.jpg: a JPEG cut short"):
        source = load(tmp_path, verify="header")  # its header looks fine: its end does not
    assert source.num_examples == 6 and source.skip_errors
    assert len(examples(source)) == 6


def break_in_the_middle(folder):
    """A JPEG and a PNG whose headers, chunks and end markers are whole but whose
    pixel data is broken half-way: a Huffman-table marker inside the JPEG's scan,
    scrambled deflate data under a recomputed CRC in the PNG. Only a decoder can
    tell; PIL's header check passes both. Returns their paths."""
    write_image(folder / "whole.jpg", (24, 24), 3, 7)
    write_image(folder / "whole.png", (24, 24), 3, 8)
    jpeg = (folder / "whole.jpg").read_bytes()
    middle = (jpeg.index(b"\xff\xda") + len(jpeg)) // 2
    (folder / "midbad.jpg").write_bytes(jpeg[:middle] + b"\xff\xc4" + jpeg[middle + 2:])
    png = (folder / "whole.png").read_bytes()
    start = png.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png[start:start + 4])
    body = bytearray(png[start + 8:start + 8 + length])
    for i in range(length // 2, length // 2 + 16):
        body[i] ^= 0x5A
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
    (folder / "midbad.png").write_bytes(png[:start + 8] + bytes(body) + crc
                                        + png[start + 12 + length:])
    (folder / "whole.jpg").unlink()
    (folder / "whole.png").unlink()
    return str(folder / "midbad.jpg"), str(folder / "midbad.png")


@pytest.mark.parametrize("verify", ["decode", "header", None])
def test_a_file_broken_mid_pixels_is_skipped_and_named_in_every_verify_mode(tmp_path, verify):
    make_image_folder(tmp_path, corrupt=False, per_class=2)
    broken = break_in_the_middle(tmp_path / "fish")
    record = {"crop": 16, "resize": 16, "mean": [0.5], "std": [0.5]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = load(tmp_path, verify=verify)
        # only "decode" decodes up front; the others meet the files in tf.data
        assert source.num_examples == (6 if verify == "decode" else 8)
        train = train_pipeline(source, record, batch_size=1, channels=3)
        evaluation = eval_pipeline(source, record, batch_size=1, channels=3)
        sizes = (sum(1 for _ in train), sum(1 for _ in evaluation))
    assert sizes == (6, 6)
    named = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    for path in broken:
        assert any(path in message for message in named), (path, named)
    assert not any("function_node" in message for message in named)  # the decoder's words


def test_folder_with_split_subfolders(tmp_path):
    make_image_folder(tmp_path / "train", corrupt=False, per_class=3)
    make_image_folder(tmp_path / "val", corrupt=False, per_class=1)
    os.makedirs(tmp_path / "val" / "zebras")  # a class only one split has
    train = load(tmp_path)
    val = load(tmp_path, split="validation")
    assert train.class_names == val.class_names == ("cats", "dogs", "fish", "zebras")
    assert (train.num_examples, val.num_examples) == (9, 3)
    with pytest.raises(ValueError, match="split='test'.*'train', 'validation'"):
        load(tmp_path, split="test")


def test_folder_validation_split_holds_out_each_class(tmp_path):
    make_image_folder(tmp_path, corrupt=False)
    train = load(tmp_path, validation_split=0.25)
    val = load(tmp_path, split="validation", validation_split=0.25)
    assert (train.num_examples, val.num_examples) == (9, 3)
    assert sorted(y for _, y in examples(val)) == [0, 1, 2]


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no class sub-folders"):
        load(tmp_path)
    os.makedirs(tmp_path / "cats")
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="holds no images.*jpg"):
        load(tmp_path)
    (tmp_path / "cats" / "a.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="a.jpg"), \
            pytest.raises(ValueError, match="could be read"):
        load(tmp_path)
    write_image(tmp_path / "cats" / "b.png", (8, 8), 3, 0)
    with pytest.raises(ValueError, match="split='validation'.*'train'"):
        load(tmp_path, split="validation")
    with pytest.raises(ValueError, match="is a file"):
        load(tmp_path / "cats" / "b.png")
    with pytest.raises(ValueError, match="class_names applies to"):
        load(tmp_path, class_names=["x"])


# ---------------------------------------------------------------------------- arrays


def test_arrays_of_every_kind_become_uint8_images():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (6, 9, 7), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    for x in (raw, raw.astype(np.float32), raw.astype(np.float64) / 255.0,
              raw.astype(np.int32)):
        source = load((x, y))
        assert source.class_names == ("0", "1", "2") and source.channels == 1
        got = np.stack([image for image, _ in examples(source)])
        np.testing.assert_array_equal(got[..., 0], raw)
    rgb = load((rng.random((4, 5, 5, 3)), [0, 1, 0, 1]), class_names=["no", "yes"])
    assert rgb.class_names == ("no", "yes") and rgb.channels == 3
    check_examples(rgb, 3)


def test_array_errors_name_the_argument():
    x = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="same length; received 4 images and 3 labels"):
        load((x, [0, 1, 2]))
    with pytest.raises(ValueError, match="channels-first"):
        load((np.zeros((4, 3, 8, 8), np.uint8), [0, 1, 2, 3]))
    with pytest.raises(ValueError, match="standardised"):
        load((np.full((4, 8, 8), -0.5), [0, 1, 2, 3]))
    with pytest.raises(ValueError, match="class_names has 1 names"):
        load((x, [0, 1, 1, 0]), class_names=["a"])
    with pytest.raises(ValueError, match="integer class labels"):
        load((x, np.zeros((4, 2))))
    with pytest.raises(ValueError, match="split must be one of"):
        load((x, [0, 1, 1, 0]), split=None)
    with pytest.raises(ValueError, match="split='test' is not available"):
        load((x, [0, 1, 1, 0]), split="test")


def test_argument_errors_name_the_value():
    with pytest.raises(ValueError, match="channels=2"):
        load("digits", channels=2)
    with pytest.raises(ValueError, match="validation_split=1.5"):
        load("digits", validation_split=1.5)
    with pytest.raises(ValueError, match="verify='full'"):
        load("digits", verify="full")
    with pytest.raises(ValueError, match="received source=42"):
        load(42)


# ---------------------------------------------------------------------------- tfds


@pytest.fixture
def mocked_tfds():
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


@pytest.mark.parametrize("name, shape, classes, first", [
    ("mnist", (28, 28, 1), 10, "0"),
    ("cifar10", (32, 32, 3), 10, None),  # its names come with the prepared data
    ("imagenet2012", None, 1000, "n01440764"),
])
def test_tfds_names_give_uint8_images_and_class_names(mocked_tfds, name, shape, classes,
                                                       first):
    source = load(name, split="train", data_dir="/nonexistent/tfds")
    assert source.num_classes == classes
    assert first is None or source.class_names[0] == first
    check_examples(source, shape[-1] if shape else 3)
    got = examples(source)
    assert len(got) == 8
    if shape:
        assert {x.shape for x, _ in got} == {shape}


def test_tfds_grayscale_dataset_converted_to_rgb(mocked_tfds):
    source = load("fashion_mnist", channels=3)
    assert source.class_names[0] == "T-shirt/top"
    check_examples(source, 3)


def test_unknown_dataset_name_or_missing_folder_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="source='mnistt'.*Did you mean 'mnist'"):
        load("mnistt")
    missing = str(tmp_path / "no such folder")
    with pytest.raises(ValueError, match="is not an existing folder"):
        load(missing)
    with pytest.raises(ValueError, match="source='cifar10/nope'.*cannot read it"):
        load("cifar10/nope")


def test_imagenet_without_its_manual_files_says_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="source='imagenet2012': Manual directory"):
        load("imagenet2012", data_dir=str(tmp_path), manual_dir=str(tmp_path / "none"))


@pytest.fixture(scope="module")
def prepared_dummy_mnist(tmp_path_factory):
    """A real prepared tensorflow-datasets dataset on disk: 20 train, 20 test."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds.testing.DummyMnist(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_tfds_prepared_dataset_splits_and_validation_split(prepared_dummy_mnist):
    train = load("dummy_mnist", data_dir=prepared_dummy_mnist, download=False)
    assert train.num_examples == 20 and len(examples(train)) == 20
    check_examples(train, 1)
    held = load("dummy_mnist", split="validation", validation_split=0.25,
                data_dir=prepared_dummy_mnist, download=False)
    rest = load("dummy_mnist", validation_split=0.25, data_dir=prepared_dummy_mnist,
                download=False)
    assert (rest.num_examples, held.num_examples) == (15, 5)
    assert len(examples(held)) == 5
    sliced = load("dummy_mnist", split="test[:50%]", data_dir=prepared_dummy_mnist)
    assert sliced.num_examples == 10


def test_tfds_bad_split_and_missing_data_are_value_errors(prepared_dummy_mnist, tmp_path):
    with pytest.raises(ValueError, match="split='validation'.*'train', 'test'"):
        load("dummy_mnist", split="validation", data_dir=prepared_dummy_mnist)
    with pytest.raises(ValueError, match="could not find data"):
        load("mnist", data_dir=str(tmp_path), download=False)
