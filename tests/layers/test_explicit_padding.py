"""torch's symmetric zero padding as the `padding` of kcnn's convolutions.

`Conv2D(padding=p)` (and the grouped and depthwise layers) must be exactly the
`ZeroPadding2D(p)` + "valid" convolution that kcnn's builders made before:
the same outputs and the same training step, the same output shapes, a config
that round-trips, and models of the old form still loading.
"""

import keras
import numpy as np
import pytest

from kcnn.layers.conv import Conv2D, DepthwiseConv2D, GroupedConv2D, explicit_padding
from tests.utils import assert_same_sgd_step

LAYERS = {
    "conv": lambda padding, strides, df: Conv2D(6, 3, strides=strides, padding=padding,
                                                data_format=df),
    "grouped": lambda padding, strides, df: GroupedConv2D(6, 5, strides=strides,
                                                          padding=padding, groups=2,
                                                          data_format=df),
    "depthwise": lambda padding, strides, df: DepthwiseConv2D(3, strides=strides,
                                                              padding=padding,
                                                              depth_multiplier=2,
                                                              data_format=df),
}


def _models(kind, padding, strides, data_format):
    """(padding inside the layer, ZeroPadding2D + "valid"), the same weights."""
    shape = (4, 10, 9) if data_format == "channels_first" else (10, 9, 4)

    def build(inside):
        inputs = keras.Input(shape)
        if inside:
            x = LAYERS[kind](padding, strides, data_format)(inputs)
        else:
            x = keras.layers.ZeroPadding2D(padding, data_format=data_format)(inputs)
            x = LAYERS[kind]("valid", strides, data_format)(x)
        return keras.Model(inputs, keras.layers.Activation("tanh")(x))

    return build, shape


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kind,padding,strides",
                         [("conv", 1, 2), ("conv", (2, 1), 1), ("grouped", 2, 2),
                          ("depthwise", 1, 2), ("depthwise", (1, 2), 1)])
def test_padding_inside_equals_a_zero_padding_layer_before(kind, padding, strides,
                                                           data_format):
    build, shape = _models(kind, padding, strides, data_format)
    inside, before = build(True), build(False)
    before.set_weights(inside.get_weights())
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype("float32")
    ours = keras.ops.convert_to_numpy(inside(x))
    reference = keras.ops.convert_to_numpy(before(x))
    assert ours.shape == reference.shape == (2,) + inside.output_shape[1:]
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    y = np.random.default_rng(1).normal(size=reference.shape).astype("float32")
    assert_same_sgd_step(lambda form: build(form == "inside"), ("inside", "before"), x, y)


def test_config_round_trips_and_a_keras_file_keeps_the_padding(tmp_path):
    inputs = keras.Input((9, 9, 4))
    x = Conv2D(6, 3, strides=2, padding=1, name="conv")(inputs)
    x = DepthwiseConv2D(3, 2, (2, 1), name="depthwise")(x)  # padding given positionally
    model = keras.Model(inputs, x)
    assert model.get_layer("conv").padding == (1, 1)
    assert model.get_layer("depthwise").padding == (2, 1)
    assert model.get_layer("conv").get_config()["padding"] == [1, 1]
    # rows 9 + 2 -> 5 (k3, s2), then 5 + 4 -> 4; columns 9 + 2 -> 5, then 5 + 2 -> 3
    assert model.output_shape == (None, 4, 3, 6)
    model.save(tmp_path / "padded.keras")
    restored = keras.saving.load_model(tmp_path / "padded.keras")
    assert restored.get_layer("depthwise").padding == (2, 1)
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 4)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(x)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-6, atol=1e-6)


def test_keras_padding_modes_are_unchanged():
    layer = Conv2D(2, 3, padding="same")
    assert layer.padding == "same" and layer.get_config()["padding"] == "same"
    assert DepthwiseConv2D(3).padding == "valid"


@pytest.mark.parametrize("padding", [-1, 1.5, (1, 2, 3), "full", (1, "2"), True])
def test_bad_padding_names_the_argument_and_the_allowed_values(padding):
    with pytest.raises(ValueError, match="padding must be 'valid', 'same', or torch's"):
        Conv2D(2, 3, padding=padding)
    with pytest.raises(ValueError, match="padding"):
        explicit_padding(padding)
