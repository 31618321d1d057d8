"""kcnn.profile: multiply-accumulates, parameters and receptive fields from the graph.

The reference-size models are built without their weights (`without_weights`),
so even VGG-16 costs a fraction of a second on every backend; only models that
are run or compared with `count_params()` of real weights are small.
"""

import keras
import numpy as np
import pytest

import kcnn
from kcnn.inspect import profile, without_weights
from kcnn.inspect import _costs
from kcnn.inspect.profile import costs_table_source, model_costs
from kcnn.layers import GroupedConv2D
from tests.inspect.conftest import symbolic
from tests.utils import trainable_count

# torchvision 0.29.1's published figures for its ImageNet weights, read from the
# weights' metadata: `_ops` (GMACs at 224x224, which torchvision labels
# "GFLOPS") and `num_params`, e.g. AlexNet_Weights.IMAGENET1K_V1.meta in
# torchvision/models/alexnet.py, ResNet50_Weights.IMAGENET1K_V1 in resnet.py.
# Written out here because importing torchvision in the test process is unsafe
# on some backends (see the README's import order).
TORCHVISION = {
    "alexnet": (0.714, 61_100_840),
    "vgg16": (15.47, 138_357_544),
    "resnet50": (4.089, 25_557_032),
    "googlenet": (1.498, 6_624_904),
    "densenet121": (2.834, 7_978_856),
    "mobilenet_v2": (0.301, 3_504_872),
    "efficientnet_b0": (0.386, 5_288_548),
}


def _symbolic(name, **kwargs):
    if not kwargs:
        return symbolic(name)
    with without_weights():
        return kcnn.create_model(name, **kwargs)


def _row(p, name):
    return next(row for row in p.rows if row["name"] == name)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_macs_and_params_match_torchvision_published_figures(name):
    gmacs, num_params = TORCHVISION[name]
    model = _symbolic(name)
    p = profile(model)
    assert p.macs / 1e9 == pytest.approx(gmacs, rel=0.005)
    assert p.flops == 2 * p.macs
    assert p.params == model.count_params()
    assert p.trainable_params == trainable_count(model) == num_params
    assert tuple(model_costs(name)) == (p.params, p.trainable_params, p.macs)


def test_params_equal_count_params_of_an_allocated_model(lenet):
    p = profile(lenet)
    assert p.params == lenet.count_params() == trainable_count(lenet) == p.trainable_params
    assert sum(row["params"] for row in p.rows) == p.params
    assert tuple(model_costs("lenet5")) == (p.params, p.trainable_params, p.macs)


def test_receptive_fields_of_the_last_pooling_layers():
    # AlexNet: 11 (conv1, stride 4), +2*4 (pool), +4*8 (conv2 5x5), +2*8,
    # +3 * 2*16 (three 3x3 convs), +2*16 (pool) = 195.
    alexnet = profile(_symbolic("alexnet"))
    assert _row(alexnet, "features_12")["receptive_field"] == 195
    assert _row(alexnet, "features_12")["jump"] == 32
    assert _row(alexnet, "features_0")["receptive_field"] == 11
    vgg = profile(_symbolic("vgg16"))
    assert _row(vgg, "features_30")["receptive_field"] == 212
    assert _row(vgg, "features_30")["jump"] == 32
    # The classifier sees the whole 7x7 map: 212 + 6 * 32.
    assert _row(vgg, "classifier_0")["receptive_field"] == 404
    assert _row(vgg, "classifier_0")["jump"] is None


def test_channels_first_gives_the_same_profile(channels_first):
    # The 2012 layout: LRN, grouped convolutions (GroupedConv2D), max pools.
    first = profile(_symbolic("alexnet", variant="paper"))
    keras.config.set_image_data_format("channels_last")
    last = profile(_symbolic("alexnet", variant="paper"))
    keys = ("name", "type", "params", "macs", "receptive_field", "jump")
    assert [[r[k] for k in keys] for r in first.rows] == [[r[k] for k in keys] for r in last.rows]
    assert _row(first, "conv2")["output_shape"] == (256, 27, 27)
    assert _row(last, "conv2")["output_shape"] == (27, 27, 256)
    assert _row(first, "pool5")["receptive_field"] == 195


def test_every_kind_of_convolution_by_formula():
    with without_weights():   # only the graph is read
        x = inputs = keras.Input((16, 16, 8))
        x = keras.layers.Conv2D(12, 3, groups=4, padding="same", name="grouped")(x)
        x = GroupedConv2D(12, 3, groups=2, strides=2, name="kcnn_grouped")(x)      # 7x7
        x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                         dilation_rate=2, name="depthwise")(x)    # 7x7x24
        x = keras.layers.SeparableConv2D(10, 3, name="separable")(x)              # 5x5x10
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.Dense(6, name="dense_per_position")(x)                    # 5x5x6
        x = keras.layers.AveragePooling2D(2, name="pool")(x)                      # 2x2x6
        x = keras.layers.GlobalMaxPooling2D(name="global")(x)
        outputs = keras.layers.Dense(3, name="fc")(x)
        model = keras.Model(inputs, outputs)
    p = profile(model)

    expected = {
        "grouped": (16 * 16 * 12 * 9 * 8 // 4, True),
        "kcnn_grouped": (7 * 7 * 12 * 9 * 12 // 2, True),
        "depthwise": (7 * 7 * 24 * 9, True),
        "separable": (5 * 5 * 24 * 9 + 5 * 5 * 24 * 10, True),
        "bn": (5 * 5 * 10, False),
        "dense_per_position": (5 * 5 * 10 * 6, True),
        "pool": (2 * 2 * 6 * 4, False),
        "global": (2 * 2 * 6, False),
        "fc": (6 * 3, True),
    }
    for name, (macs, counted) in expected.items():
        assert (_row(p, name)["macs"], _row(p, name)["counted"]) == (macs, counted), name
    assert p.macs == sum(m for m, counted in expected.values() if counted)
    # Fields: 3, then 3 + 2 * 1 at stride 2, the dilated 5x5 at jump 2, a 3x3 at
    # jump 2, the pool 2x2 at jump 2, then the whole 2x2 map at jump 4.
    fields = [_row(p, n)["receptive_field"] for n in
              ("grouped", "kcnn_grouped", "depthwise", "separable", "pool", "global")]
    assert fields == [3, 5, 13, 17, 19, 23]
    assert [_row(p, n)["jump"] for n in ("kcnn_grouped", "pool", "global")] == [2, 4, None]


def test_transposed_convolution_counts_and_ends_the_known_fields():
    with without_weights():
        inputs = keras.Input((5, 5, 8))
        x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
        x = keras.layers.Conv2DTranspose(4, 3, strides=2, name="up")(x)     # 11x11x4
        model = keras.Model(inputs, keras.layers.ReLU(name="relu")(x))
    p = profile(model)
    assert _row(p, "up")["output_shape"] == (11, 11, 4)
    assert (_row(p, "up")["macs"], _row(p, "up")["counted"]) == (5 * 5 * 9 * 8 * 4, True)
    assert _row(p, "conv")["receptive_field"] == 3
    assert _row(p, "up")["receptive_field"] is None and _row(p, "relu")["jump"] is None


def test_nested_models_shared_layers_and_merges():
    with without_weights():
        inner_in = keras.Input((None, None, 4))
        inner_out = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inner_in)
        block = keras.Model(inner_in, inner_out, name="block")
        shared = keras.layers.Conv2D(4, 1, name="shared")

        x = inputs = keras.Input((8, 8, 4))
        a = block(x)
        b = shared(x)
        c = shared(a)
        merged = keras.layers.Add(name="add")([b, c])
        se = keras.layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(merged)
        out = keras.layers.Multiply(name="scale")([merged, se])
        model = keras.Model(inputs, out)
    p = profile(model)

    names = [row["name"] for row in p.rows]
    assert "block/conv" in names
    shared_rows = [row for row in p.rows if row["name"] == "shared"]
    assert [r["params"] for r in shared_rows] == [20, 0]  # weights counted once
    assert [r["macs"] for r in shared_rows] == [8 * 8 * 4 * 4] * 2
    assert _row(p, "block/conv")["receptive_field"] == 3
    assert _row(p, "add")["receptive_field"] == 3       # the larger of 1 and 3
    assert _row(p, "squeeze")["receptive_field"] == 10  # 3 + 7 * 1: the whole map
    # The merge with the broadcast 1x1 scale keeps the map's own jump.
    assert (_row(p, "scale")["receptive_field"], _row(p, "scale")["jump"]) == (10, 1)
    assert _row(p, "add")["macs"] == 8 * 8 * 4 and not _row(p, "add")["counted"]


def test_unknown_input_size_needs_input_shape():
    model = _symbolic("resnet18", input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"input_shape=\(224, 224, 3\)"):
        profile(model)
    at_224 = profile(model, input_shape=(224, 224, 3))
    assert at_224.macs == model_costs("resnet18").macs
    assert _row(at_224, "layer4_1_relu")["output_shape"] == (7, 7, 512)
    smaller = profile(model, input_shape=(112, 96, 3))
    assert _row(smaller, "layer4_1_relu")["output_shape"] == (4, 3, 512)
    assert isinstance(_row(smaller, "avgpool")["receptive_field"], tuple)


def test_bad_arguments_are_value_errors(lenet):
    model = lenet
    with pytest.raises(ValueError, match="input_shape must give the 3 dimensions"):
        profile(model, input_shape=(28, 28))
    with pytest.raises(ValueError, match="does not fit layer 'conv1'"):
        profile(model, input_shape=(28, 28, 3))

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional or built Sequential"):
        profile(Subclassed())
    with pytest.raises(ValueError, match="Unknown model name"):
        profile("resnet5")


def test_table_prints_rows_and_totals(lenet):
    text = str(profile(lenet))
    assert "conv1" in text and "AveragePooling2D" in text
    assert "61,706 parameters" in text and "0.4 MMACs" in text
    assert repr(profile(lenet)).startswith("<Profile lenet5: 61,706 parameters")


def test_building_without_weights_allocates_nothing_and_leaves_no_trace():
    from keras.src.backend.common import global_state

    pending = list(global_state.get_global_attribute("uninitialized_variables", []))
    with without_weights():
        model = kcnn.vgg11()
    assert all(v._value is None for v in model.weights)
    assert global_state.get_global_attribute("uninitialized_variables", []) == pending
    # A later stateless scope initialises only its own variables.
    with keras.StatelessScope():
        pass
    assert all(v._value is None for v in model.weights)


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="parameters and MACs are read from the graph of models built "
                           "without weights, the same on every backend: checked once, on "
                           "torch")
def test_costs_table_matches_every_builder():
    assert sorted(_costs.COSTS) == kcnn.list_models()
    # The models other tests built are reused (building all takes 10-30 s on TF).
    stale = []
    for name in kcnn.list_models():
        p = profile(symbolic(name))
        if (p.params, p.trainable_params, p.macs) != _costs.COSTS[name]:
            stale.append(name)
    assert not stale, (f"kcnn/inspect/_costs.py is stale for {stale}; regenerate it with "
                       f"costs_table_source():\n" + costs_table_source())
    assert np.isclose(model_costs("efficientnet_b7").macs / 1e9, 37.746, rtol=5e-3)
