"""Ensembles and test-time augmentation: exact means of the members' outputs."""

import kcnn
import keras
import numpy as np
import pytest
import tensorflow as tf
from kcnn import transfer
from kcnn.data.augment import ten_crop

SHAPE = (16, 16, 1)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _x(n=3, size=16):
    return np.random.default_rng(0).random((n, size, size, 1)).astype("float32")


def _members(activation="softmax"):
    members = []
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        members.append(kcnn.simple_cnn(input_shape=SHAPE, classes=4,
                                       classifier_activation=activation))
    return members


def test_ensemble_of_one_builders_models_is_the_mean_of_their_probabilities(tmp_path):
    members = _members()
    assert len({m.name for m in members}) == 1  # same names: need nesting
    model = transfer.ensemble(members)
    assert [layer.name for layer in model.layers] == [
        "input", "member_0", "member_1", "member_2", "mean"]
    outputs = [_np(m(_x())) for m in members]
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3  # the mean is not trivial
    np.testing.assert_allclose(_np(model(_x())), np.mean(outputs, axis=0), atol=1e-6)
    assert model.metadata["class_names"] == members[0].metadata["class_names"]

    model.save(tmp_path / "ensemble.keras")
    loaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(_np(loaded(_x())), _np(model(_x())), atol=1e-6)


def test_members_that_output_logits_are_averaged_as_probabilities():
    members = _members(activation=None)
    model = transfer.ensemble(members)
    probs = [_np(keras.ops.softmax(m(_x()))) for m in members]
    np.testing.assert_allclose(_np(model(_x())), np.mean(probs, axis=0), atol=1e-6)


def test_mismatched_members_are_refused():
    small = kcnn.simple_cnn(input_shape=SHAPE, classes=4)
    with pytest.raises(ValueError, match="input"):
        transfer.ensemble([small, kcnn.simple_cnn(classes=4)])
    with pytest.raises(ValueError, match="classes"):
        transfer.ensemble([small, kcnn.simple_cnn(input_shape=SHAPE, classes=5)])
    with pytest.raises(ValueError, match="two or more"):
        transfer.ensemble([small])


def test_flip_tta_averages_each_image_and_its_reflection():
    model = kcnn.simple_cnn(input_shape=SHAPE, classes=4)
    x = _x()
    # One call on both views, as the wrapper makes (JAX compiles per shape).
    both = _np(model(np.concatenate([x, x[:, :, ::-1, :]])))
    expected = (both[:3] + both[3:]) / 2
    np.testing.assert_allclose(_np(transfer.tta(model, "flip")(x)), expected, atol=1e-6)


def test_ten_crop_views_are_the_pipelines_ten_crops():
    x = np.random.default_rng(1).integers(0, 255, (2, 17, 19, 1)).astype("float32")
    views = _np(transfer.AugmentedViews("ten_crop", crop=(12, 12))(x))
    assert views.shape == (20, 12, 12, 1)
    for b in range(2):
        reference = ten_crop(tf.constant(x[b]), (12, 12)).numpy()
        np.testing.assert_array_equal(views.reshape(10, 2, 12, 12, 1)[:, b], reference)


def test_ten_crop_tta_averages_the_model_over_the_ten_crops():
    model = kcnn.simple_cnn(input_shape=SHAPE, classes=4)
    wrapped = transfer.tta(model, "ten_crop", input_size=20)
    assert wrapped.metadata["input_size"] == [20, 20]
    assert wrapped.metadata["preprocessing"]["crop"] == 20
    x = _x(n=2, size=20)
    crops = np.stack([ten_crop(tf.constant(image), 16).numpy() for image in x], axis=1)
    probs = _np(model(crops.reshape(20, 16, 16, 1)))  # view-major, as the wrapper
    expected = probs.reshape(10, 2, 4).mean(axis=0)
    np.testing.assert_allclose(_np(wrapped(x)), expected, atol=1e-6)


def test_flip_views_follow_channels_first(channels_first):
    x = np.arange(2 * 1 * 3 * 4, dtype="float32").reshape(2, 1, 3, 4)
    views = _np(transfer.AugmentedViews("flip")(x))
    np.testing.assert_array_equal(views, np.concatenate([x, x[..., ::-1]]))


def test_bad_tta_arguments_raise_value_errors():
    model = kcnn.simple_cnn(input_shape=SHAPE, classes=4)
    with pytest.raises(ValueError, match="mode"):
        transfer.tta(model, "rotate")
    with pytest.raises(ValueError, match="input_size"):
        transfer.tta(model, "ten_crop")  # no larger resize in its preprocessing
    with pytest.raises(ValueError, match="input_size"):
        transfer.tta(model, "ten_crop", input_size=8)
    with pytest.raises(ValueError, match="crop"):
        transfer.AugmentedViews("ten_crop")
