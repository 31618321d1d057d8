"""Stages, head and freezing: which layers train."""

import kcnn
import keras
import pytest
from kcnn import transfer
from kcnn.inspect import without_weights

SIMPLE_STAGES = {
    "conv1": ["conv1", "bn1", "relu1", "pool1"],
    "conv2": ["conv2", "bn2", "relu2", "pool2"],
    "conv3": ["conv3", "bn3", "relu3", "pool3", "dropout1", "flatten"],
    "fc1": ["fc1", "dropout2"],
}


def _trainable(model):
    return {layer.name for layer in model.layers if layer.trainable and layer.weights
            and not isinstance(layer, keras.layers.Dropout)}


def test_simple_cnn_stages_split_at_pooling_and_the_head_is_the_classifier():
    model = kcnn.simple_cnn()
    assert transfer.stages(model) == SIMPLE_STAGES
    assert transfer.head_layers(model) == ["fc2", "predictions"]
    assert transfer.features_layer(model) == "dropout2"


def test_a_feature_extractor_has_no_head():
    model = kcnn.simple_cnn(include_top=False, pooling="avg")
    assert transfer.head_layers(model) == []
    assert transfer.stages(model)["conv3"][-1] == "pool_avg"


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="stages are read from layer names and the graph of a model "
                           "built without weights, the same on every backend: checked "
                           "once, on torch")
@pytest.mark.parametrize("name, kwargs, expected", [
    ("resnet18", {}, ["conv1", "layer1", "layer2", "layer3", "layer4"]),
    ("densenet121", {}, ["conv0", "denseblock1", "denseblock2", "denseblock3",
                         "denseblock4"]),
    ("googlenet", {"aux_logits": True},
     ["conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a",
      "inception4b", "inception4c", "inception4d", "inception4e", "inception5a",
      "inception5b"]),
    ("mobilenet_v2", {}, [f"features_{i}" for i in range(19)]),
    ("efficientnet_b0", {}, [f"features_{i}" for i in range(9)]),
    ("vgg11_bn", {}, ["features_0", "features_4", "features_8", "features_15",
                      "features_22", "classifier_0"]),
    ("alexnet", {}, ["features_0", "features_3", "features_6", "classifier_1"]),
    ("alexnet", {"variant": "paper"}, ["conv1", "conv2", "conv3", "fc6"]),
    ("lenet5", {}, ["conv1", "conv2", "fc1"]),
])
def test_stages_of_every_family_follow_torchvision_modules(name, kwargs, expected):
    # Inside the scope: on torch a sub-model of a model without weights (stages()
    # makes one) must not track its variables either.
    with without_weights():
        model = kcnn.create_model(name, **kwargs)
        found = transfer.stages(model)
        head = transfer.head_layers(model)
    assert list(found) == expected
    # Every layer is in exactly one stage or the head.
    names = [n for stage in found.values() for n in stage] + head
    assert sorted(names) == sorted(layer.name for layer in model.layers[1:])
    if name == "densenet121":
        assert "features_transition1_pool" in found["denseblock1"]
        assert "features_norm5" in found["denseblock4"]
    if name == "googlenet":  # the auxiliary classifiers are head, not backbone
        assert {"aux1_fc2", "aux2_fc2", "fc"} <= set(head)


def test_freeze_up_to_a_stage_or_a_layer_and_unfreeze_the_last_stages():
    model = kcnn.simple_cnn()
    head = {"fc2"}
    transfer.freeze(model)
    assert _trainable(model) == head
    transfer.freeze(model, up_to="conv2")
    assert _trainable(model) == {"conv3", "bn3", "fc1"} | head
    transfer.freeze(model, up_to="bn3")  # a layer inside a stage
    assert _trainable(model) == {"fc1"} | head
    transfer.unfreeze(model, last=2)
    assert _trainable(model) == {"conv3", "bn3", "fc1"} | head
    transfer.unfreeze(model, last=0)
    assert _trainable(model) == head
    transfer.unfreeze(model, last=2, freeze_batch_norm=True)
    assert _trainable(model) == {"conv3", "fc1"} | head
    transfer.unfreeze(model)
    everything = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "fc1"} | head
    assert _trainable(model) == everything
    assert len(model.trainable_weights) == 16


def test_gradual_schedule_adds_one_stage_from_the_top_every_few_epochs():
    model = kcnn.simple_cnn()
    assert transfer.gradual_schedule(model, 5) == {"fc1": 1, "conv3": 2, "conv2": 3,
                                                   "conv1": 4}
    assert transfer.gradual_schedule(model, 5, every=2) == {"fc1": 2, "conv3": 4}
    assert transfer.gradual_schedule(model, 3, start=0) == {"fc1": 0, "conv3": 1,
                                                            "conv2": 2}


def test_bad_stage_names_and_arguments_raise_value_errors():
    model = kcnn.simple_cnn()
    with pytest.raises(ValueError, match="up_to='conv9'.*conv1, conv2, conv3, fc1"):
        transfer.freeze(model, up_to="conv9")
    with pytest.raises(ValueError, match="Unknown stage"):
        transfer.set_trainable(model, ["layer4"])
    with pytest.raises(ValueError, match="last"):
        transfer.unfreeze(model, last=-1)
    with pytest.raises(ValueError, match="epochs"):
        transfer.gradual_schedule(model, 0)
    with pytest.raises(ValueError, match="functional Keras model"):
        transfer.stages("simple_cnn")
