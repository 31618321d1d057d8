"""The keras.applications-style arguments every builder shares."""

import os

import keras
import numpy as np
import pytest

import kcnn


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "mean"}, r"pooling must be one of None, 'avg' or 'max'.*pooling='mean'"),
    ({"classes": -3}, r"classes must be a positive integer.*classes=-3"),
    ({"classes": 0}, r"classes=0"),
    ({"classes": 2.5}, r"classes=2.5"),
    ({"include_top": "yes"}, r"include_top='yes'"),
    ({"classifier_activation": "no-such"}, r"classifier_activation='no-such'"),
    ({"weights": "missing.weights.h5"}, r"weights='missing.weights.h5': no such file"),
    ({"weights": 3}, r"weights=3"),
    ({"input_shape": (28, 28)}, r"input_shape must have 3 entries"),
    ({"input_shape": (None, None, 1)}, r"needs a fixed input size"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kcnn.lenet5(**kwargs)


def test_input_tensor_is_used_as_the_model_input():
    inputs = keras.Input((28, 28, 1))
    model = kcnn.lenet5(input_tensor=inputs)
    assert model.inputs[0] is inputs


def test_input_tensor_in_a_larger_graph():
    raw = keras.Input((28, 28, 1), name="raw")
    scaled = keras.layers.Rescaling(1 / 255.0)(raw)
    model = kcnn.lenet5(input_tensor=scaled)
    assert model.inputs[0] is raw
    y = model(np.full((1, 28, 28, 1), 255.0, "float32"))
    assert tuple(y.shape) == (1, 10)


def test_classifier_activation_none_gives_logits():
    model = kcnn.lenet5(classifier_activation=None)
    y = keras.ops.convert_to_numpy(model(np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype("float32")))
    assert not np.allclose(y.sum(axis=1), 1.0)


def test_metadata_record_describes_the_input_and_classes():
    meta = kcnn.lenet5(classes=3).metadata
    assert meta["input_size"] == [28, 28]
    assert meta["channels"] == 1
    assert meta["class_names"] == ["0", "1", "2"]
    assert set(meta["preprocessing"]) >= {"scale", "mean", "std", "resize", "crop"}


def test_grayscale_model_gets_one_mean_and_std():
    # The ImageNet statistics averaged over the colours: the training pipeline
    # and the serving signature need one value per input channel.
    record = kcnn.alexnet(input_shape=(64, 64, 1), classes=10).metadata["preprocessing"]
    assert record["mean"] == [pytest.approx(0.449)]
    assert record["std"] == [pytest.approx(0.226)]


def test_save_and_load_keeps_outputs_and_metadata(tmp_path):
    model = kcnn.simple_cnn(classes=4)
    model.metadata["class_names"] = ["a", "b", "c", "d"]
    path = os.fspath(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model.predict(x, verbose=0)),
                                  np.asarray(loaded.predict(x, verbose=0)))
    assert loaded.metadata == model.metadata
    assert isinstance(loaded, kcnn.models.Model)


def test_weights_file_round_trip_and_mismatch(tmp_path):
    path = os.fspath(tmp_path / "lenet.weights.h5")
    source = kcnn.lenet5()
    source.save_weights(path)
    target = kcnn.lenet5(weights=path)
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match=r"weights='.*lenet.weights.h5' does not match"):
        kcnn.lenet5(weights=path, classes=7)


def test_weights_of_an_unknown_file_type_are_refused(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"unsupported file type"):
        kcnn.lenet5(weights=os.fspath(path))
