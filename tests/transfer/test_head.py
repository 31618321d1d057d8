"""A new classifier on a trained backbone."""

import kcnn
import keras
import numpy as np
import pytest
from kcnn import transfer


def _x(n=2, size=28):
    return np.random.default_rng(0).random((n, size, size, 1)).astype("float32")


def test_new_head_keeps_the_backbone_and_names_the_new_classes():
    model = kcnn.simple_cnn()
    new = transfer.replace_classifier(model, ["cat", "dog", "eel"], dropout=0.3, hidden=8)
    assert tuple(new(_x()).shape) == (2, 3)
    assert new.metadata["class_names"] == ["cat", "dog", "eel"]
    assert new.metadata["features_layer"] == "dropout2"
    assert new.metadata["preprocessing"] == model.metadata["preprocessing"]
    assert transfer.head_layers(new) == [
        "head_hidden", "head_dropout", "fc2", "predictions"]
    assert transfer.stages(new) == transfer.stages(model)
    for name in ("conv1", "bn3", "fc1"):  # the same layers, so the same weights
        assert new.get_layer(name) is model.get_layer(name)
    classifier = new.get_layer("fc2")
    assert classifier is not model.get_layer("fc2")
    assert tuple(classifier.kernel.shape) == (8, 3)
    assert not np.any(keras.ops.convert_to_numpy(classifier.kernel))  # starts at zero


def test_a_feature_map_is_pooled_and_a_cut_drops_later_layers():
    extractor = kcnn.simple_cnn(include_top=False)
    new = transfer.replace_classifier(extractor, 4)
    assert [layer.name for layer in new.layers[-3:]] == ["head_pool", "fc", "predictions"]
    assert new.metadata["class_names"] == ["0", "1", "2", "3"]
    cut = transfer.replace_classifier(kcnn.simple_cnn(), 5, features="pool2")
    assert "conv3" not in [layer.name for layer in cut.layers]
    assert list(transfer.stages(cut)) == ["conv1", "conv2"]
    assert tuple(cut(_x()).shape) == (2, 5)


def test_a_second_replacement_drops_the_first_head():
    first = transfer.replace_classifier(kcnn.simple_cnn(), 3, hidden=8)
    second = transfer.replace_classifier(first, ["a", "b"], classifier_activation=None)
    assert transfer.head_layers(second) == ["fc2"]
    assert "head_hidden" not in [layer.name for layer in second.layers]
    assert tuple(second(_x()).shape) == (2, 2)


def test_the_new_model_saves_and_loads_with_its_head_and_classes(tmp_path):
    new = transfer.replace_classifier(kcnn.simple_cnn(), ["x", "y"], hidden=4)
    rng = np.random.default_rng(1)
    for variable in new.get_layer("fc2").weights:  # make the outputs informative
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    new.save(tmp_path / "new.keras")
    loaded = keras.saving.load_model(tmp_path / "new.keras")
    assert loaded.metadata["class_names"] == ["x", "y"]
    assert transfer.head_layers(loaded) == transfer.head_layers(new)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(_x())),
                               keras.ops.convert_to_numpy(new(_x())), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"classes": 0}, "classes"),
    ({"classes": ["a", "a"]}, "repeated"),
    ({"classes": 3, "features": "conv9"}, "features='conv9'"),
    ({"classes": 3, "hidden": 0}, "hidden"),
    ({"classes": 3, "dropout": 1.5}, "dropout"),
    ({"classes": 3, "classifier_activation": "nope"}, "classifier_activation"),
])
def test_bad_arguments_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        transfer.replace_classifier(kcnn.lenet5(), **kwargs)
