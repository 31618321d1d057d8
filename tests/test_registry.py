import pytest

import kcnn


def test_list_models_filters_by_pattern():
    assert "lenet5" in kcnn.list_models()
    assert kcnn.list_models("simple*") == ["simple_cnn"]
    assert kcnn.list_models("no-such-*") == []


def test_every_registered_name_is_a_public_builder():
    for name in kcnn.list_models():
        assert getattr(kcnn, name) is kcnn.registry.get_builder(name)


def test_create_model_passes_arguments():
    model = kcnn.create_model("lenet5", classes=3)
    assert model.output_shape == (None, 3)


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match=r"name='lenet'.*Did you mean 'lenet5'"):
        kcnn.create_model("lenet")
