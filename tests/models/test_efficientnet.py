"""EfficientNet B0-B7. One B0 is built and run once for the module: on JAX a
new model costs tens of seconds (an initializer compiled per weight shape,
then the graph; XLA on CPU is slow on depthwise convolutions), so the other
tests only build models with the same weight shapes, which is cheap. B1-B7
are checked for their shapes and configuration, built without weights: that
does not depend on the backend, so it runs once, on torch.
"""

import keras
import numpy as np
import pytest

import kcnn
from kcnn.inspect import without_weights
from kcnn.layers import StochasticDepth
from kcnn.models.blocks import inverted_residual
from tests.utils import trainable_count

X = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")

# name: (trainable parameters, crop, resize, dropout, batch norm (eps, Keras
# momentum)), as torchvision's builders and weights.
VARIANTS = {
    "efficientnet_b1": (7_794_184, 240, 256, 0.2, (1e-5, 0.9)),
    "efficientnet_b2": (9_109_994, 288, 288, 0.3, (1e-5, 0.9)),
    "efficientnet_b3": (12_233_232, 300, 320, 0.3, (1e-5, 0.9)),
    "efficientnet_b4": (19_341_616, 380, 384, 0.4, (1e-5, 0.9)),
    "efficientnet_b5": (30_389_784, 456, 456, 0.4, (1e-3, 0.99)),
    "efficientnet_b6": (43_040_704, 528, 528, 0.5, (1e-3, 0.99)),
    "efficientnet_b7": (66_347_960, 600, 600, 0.5, (1e-3, 0.99)),
}


@pytest.fixture(scope="module")
def model():
    keras.backend.clear_session()
    return kcnn.efficientnet_b0(input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def probabilities(model):
    # predict compiles the whole graph on JAX: much faster there than running
    # the first call op by op.
    return model.predict(X, batch_size=2, verbose=0)


def _stochastic_depth_rates(model):
    return {layer.name: layer.rate for layer in model.layers
            if isinstance(layer, StochasticDepth)}


def test_reference_parameter_count(model):
    assert trainable_count(model) == 5_288_548


def test_default_input_and_preprocessing():
    model = kcnn.efficientnet_b0()
    assert model.input_shape == (None, 224, 224, 3)
    pre = model.metadata["preprocessing"]
    assert (pre["crop"], pre["resize"], pre["interpolation"]) == (224, 256, "bicubic")
    np.testing.assert_allclose(pre["mean"], (0.485, 0.456, 0.406))
    np.testing.assert_allclose(pre["std"], (0.229, 0.224, 0.225))


def test_forward_pass_on_any_size_gives_probabilities(probabilities):
    assert probabilities.shape == (2, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_layout_follows_torchvision(model):
    # features_1 has no expansion; features_2_0 expands 16 -> 96, squeezes to
    # 16 // 4 = 4 and strides its depthwise 3x3 with torch's padding 1.
    assert isinstance(model.get_layer("features_1_0_block_0_0"), keras.layers.DepthwiseConv2D)
    assert model.get_layer("features_1_0_block_1_fc1").kernel.shape == (1, 1, 32, 8)
    assert model.get_layer("features_1_0_block_2_0").kernel.shape == (1, 1, 32, 16)
    assert model.get_layer("features_2_0_block_0_0").kernel.shape == (1, 1, 16, 96)
    assert model.get_layer("features_2_0_block_1_0").strides == (2, 2)
    assert model.get_layer("features_2_0_block_1_0").padding == (1, 1)
    assert model.get_layer("features_3_0_block_1_0").padding == (2, 2)
    assert model.get_layer("features_2_0_block_2_fc1").kernel.shape == (1, 1, 96, 4)
    assert model.get_layer("features_8_0").kernel.shape == (1, 1, 320, 1280)
    assert model.get_layer("classifier_0").rate == 0.2
    assert model.get_layer("classifier_1").kernel.shape == (1280, 1000)
    bn = model.get_layer("features_0_1")
    assert (bn.epsilon, bn.momentum) == (1e-5, 0.9)


def test_stochastic_depth_rates_grow_with_depth(model):
    # Block i of 16 drops with 0.2 * i / 16, on residual blocks only.
    rates = _stochastic_depth_rates(model)
    assert rates["features_2_1_stochastic_depth"] == pytest.approx(0.2 * 2 / 16)
    assert rates["features_6_3_stochastic_depth"] == pytest.approx(0.2 * 14 / 16)
    assert "features_2_0_stochastic_depth" not in rates  # stride 2: no residual
    assert len(rates) == 16 - 7  # every stage's first block changes shape
    assert not _stochastic_depth_rates(kcnn.efficientnet_b0(stochastic_depth_prob=0.0))


@pytest.mark.parametrize("pooling, shape", [(None, (None, 1, 1, 1280)),
                                            ("avg", (None, 1280)),
                                            ("max", (None, 1280))])
def test_include_top_false_pooling(pooling, shape):
    model = kcnn.efficientnet_b0(include_top=False, pooling=pooling,
                                 input_shape=(32, 32, 3))
    assert model.output_shape == shape


def test_input_tensor():
    inputs = keras.Input((64, 48, 3))
    model = kcnn.efficientnet_b0(input_tensor=inputs, classes=7)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 7)


def test_grayscale_input():
    model = kcnn.efficientnet_b0(input_shape=(32, 32, 1))
    assert model.get_layer("features_0_0").kernel.shape == (3, 3, 1, 32)
    assert trainable_count(model) == 5_288_548 - 2 * 3 * 3 * 32


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match=r"input_shape=\(64, 16, 3\).*at least 32"):
        kcnn.efficientnet_b0(input_shape=(64, 16, 3))


@pytest.mark.parametrize("argument", [{"dropout": 1.0}, {"dropout": "0.2"},
                                      {"stochastic_depth_prob": 1.5},
                                      {"stochastic_depth_prob": -0.1}])
def test_bad_family_arguments_are_refused(argument):
    (key, value), = argument.items()
    with pytest.raises(ValueError, match=rf"{key} must be .*received {key}={value!r}"):
        kcnn.efficientnet_b0(**argument)


def test_registry_name():
    model = kcnn.create_model("efficientnet_b0", classes=3, input_shape=(32, 32, 3))
    assert model.name == "efficientnet_b0"
    assert model.output_shape == (None, 3)


def test_keras_file_round_trip_in_inference(model, probabilities, tmp_path):
    path = tmp_path / "efficientnet_b0.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert _stochastic_depth_rates(loaded) == _stochastic_depth_rates(model)
    np.testing.assert_array_equal(loaded.predict(X, batch_size=2, verbose=0),
                                  probabilities)


def test_mbconv_block_trains_with_stochastic_depth():
    # The block every EfficientNet stacks, with stochastic depth on, in a
    # compiled train step on every backend (jit on JAX).
    inputs = keras.Input((8, 8, 16))
    x = inverted_residual(inputs, 16, expanded_channels=32, kernel_size=5,
                          activation="silu", squeeze_channels=4, drop_rate=0.5,
                          name="block", body="block")
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    block = keras.Model(inputs, outputs)
    assert isinstance(block.get_layer("block_stochastic_depth"), StochasticDepth)
    block.compile(optimizer="sgd", loss="mse")
    data = np.random.default_rng(0).normal(size=(4, 8, 8, 16)).astype("float32")
    loss = block.train_on_batch(data, np.zeros((4, 2), "float32"))
    assert np.isfinite(loss)


def test_training_steps_drop_residual_branches_and_update_the_weights():
    # B0's own weight shapes (its 1000 classes): on JAX the initializers compiled
    # for the module's model are reused, and one train step is compiled (all of
    # this test's time there: XLA compiles B0's forward and backward graph).
    model = kcnn.efficientnet_b0(input_shape=(32, 32, 3), dropout=0.0,
                                 stochastic_depth_prob=0.5)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss="sparse_categorical_crossentropy")
    labels = np.array([0, 3])
    # With no dropout and a learning rate of 0, two compiled train steps on one
    # batch differ only through the residual branches stochastic depth drops
    # (training batch norm uses the batch's own statistics), so the drops are
    # drawn afresh in every step.
    first, second = (model.train_on_batch(X, labels) for _ in range(2))
    assert np.isfinite([first, second]).all()
    assert first != pytest.approx(second, rel=1e-4)
    stem = model.get_layer("features_0_0").kernel
    before = keras.ops.convert_to_numpy(stem)
    model.optimizer.learning_rate.assign(0.1)
    assert np.isfinite(model.train_on_batch(X, labels))
    assert not np.allclose(keras.ops.convert_to_numpy(stem), before)


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="parameter counts and configuration of a model built without "
                           "weights do not depend on the backend: checked once, on torch")
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_larger_variants_match_torchvision(name):
    count, crop, resize, dropout, batch_norm = VARIANTS[name]
    with without_weights():  # shapes and configuration only
        model = kcnn.create_model(name)
    assert trainable_count(model) == count
    assert model.input_shape == (None, crop, crop, 3)
    pre = model.metadata["preprocessing"]
    assert (pre["crop"], pre["resize"], pre["interpolation"]) == (crop, resize, "bicubic")
    assert model.get_layer("classifier_0").rate == dropout
    bn = model.get_layer("features_0_1")
    assert (bn.epsilon, bn.momentum) == batch_norm
