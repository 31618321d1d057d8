"""kcnn.gradcam: the closed form, and a float64 reference that every backend meets."""

import keras
import numpy as np
import pytest

from kcnn.inspect import gradcam
from kcnn.inspect._graph import default_feature_map
from tests.inspect.conftest import symbolic


def _identity_model(fmt):
    """1x1 identity convolution, ReLU, global average pooling, dense, softmax."""
    shape = (6, 7, 2) if fmt == "channels_last" else (2, 6, 7)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="fc")(x)
    outputs = keras.layers.Activation("softmax")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([np.eye(2).reshape(1, 1, 2, 2)])
    # Class 0 reads channel 0 only, class 1 channel 1 only, class 2 both negatively.
    model.get_layer("fc").set_weights([np.array([[1.5, 0.0, -0.3], [0.0, 2.0, -0.5]]),
                                       np.zeros(3)])
    return model


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_identity_model_gives_the_normalised_input_mask(fmt):
    keras.config.set_image_data_format(fmt)
    model = _identity_model(fmt)
    rng = np.random.default_rng(0)
    mask = rng.uniform(size=(2, 6, 7)) * (rng.uniform(size=(2, 6, 7)) > 0.3)
    other = rng.uniform(size=(2, 6, 7))
    x = np.stack([mask, other], axis=-1 if fmt == "channels_last" else 1).astype("float32")

    heat = gradcam(model, x, class_index=0)
    assert heat.shape == (2, 6, 7) and heat.dtype == np.float32
    expected = mask / mask.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(heat, expected, atol=1e-6)
    np.testing.assert_allclose(gradcam(model, x, class_index=[1, 1]),
                               other / other.max(axis=(1, 2), keepdims=True), atol=1e-6)
    # No channel weighs positively for class 2: all zeros, not a division by 0.
    np.testing.assert_array_equal(gradcam(model, x, class_index=2), 0.0)


# A small residual network whose Grad-CAM is written out in float64 numpy below,
# on 11x11x2 inputs:
#   r = ReLU(conv_a(x))              3x3 stride 2 -> 5x5x4
#   A = ReLU(bn(conv_b(r)))          1x1 -> 5x5x4, the feature map explained
#   z = conv_c(A) + conv_s(r)        3x3 each -> 3x3x5; conv_s is a shortcut around A
#   logits = dense(mean(ReLU(z)))    -> 3, then softmax
# The shortcut means the scores depend on the image by a path that bypasses A:
# the gradient must be taken with respect to A alone.
_BN_EPSILON = 1e-3


def _seeded_weights():
    rng = np.random.default_rng(7)
    return {
        "conv_a": [rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4) * 0.1],
        "conv_b": [rng.normal(size=(1, 1, 4, 4)), rng.normal(size=4) * 0.1],
        "bn": [rng.uniform(0.5, 1.5, 4), rng.normal(size=4) * 0.1,
               rng.normal(size=4) * 0.1, rng.uniform(0.5, 2.0, 4)],
        "conv_c": [rng.normal(size=(3, 3, 4, 5)), rng.normal(size=5) * 0.1],
        "conv_s": [rng.normal(size=(3, 3, 4, 5)), np.zeros(5)],
        "fc": [rng.normal(size=(5, 3)), rng.normal(size=3) * 0.1],
    }


def _small_net(fmt="channels_last"):
    keras.config.set_image_data_format(fmt)
    inputs = keras.Input((11, 11, 2) if fmt == "channels_last" else (2, 11, 11))
    r = keras.layers.Conv2D(4, 3, strides=2, name="conv_a")(inputs)
    r = keras.layers.ReLU(name="relu_a")(r)
    a = keras.layers.Conv2D(4, 1, name="conv_b")(r)
    a = keras.layers.BatchNormalization(axis=-1 if fmt == "channels_last" else 1,
                                        epsilon=_BN_EPSILON, name="bn")(a)
    a = keras.layers.ReLU(name="relu_b")(a)
    z = keras.layers.Add(name="add")([keras.layers.Conv2D(5, 3, name="conv_c")(a),
                                      keras.layers.Conv2D(5, 3, name="conv_s")(r)])
    x = keras.layers.ReLU(name="relu_z")(z)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="fc")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(x))
    for name, weights in _seeded_weights().items():
        model.get_layer(name).set_weights(weights)
    return model


def _conv(x, kernel, bias, stride=1):
    kh, kw = kernel.shape[:2]
    h = (x.shape[0] - kh) // stride + 1
    w = (x.shape[1] - kw) // stride + 1
    out = np.zeros((h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            patch = x[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.einsum("hwc,hwco->o", patch, kernel)
    return out + bias


def _bilinear(m, size):
    """Half-pixel-centre bilinear enlargement, pixel by pixel."""
    out = np.zeros(size)
    for i in range(size[0]):
        for j in range(size[1]):
            y = min(max((i + 0.5) * m.shape[0] / size[0] - 0.5, 0), m.shape[0] - 1)
            x = min(max((j + 0.5) * m.shape[1] / size[1] - 0.5, 0), m.shape[1] - 1)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, m.shape[0] - 1), min(x0 + 1, m.shape[1] - 1)
            fy, fx = y - y0, x - x0
            out[i, j] = ((1 - fy) * ((1 - fx) * m[y0, x0] + fx * m[y0, x1])
                         + fy * ((1 - fx) * m[y1, x0] + fx * m[y1, x1]))
    return out


def _reference_gradcam(image, class_index=None):
    w = _seeded_weights()
    gamma, beta, mean, var = w["bn"]
    r = np.maximum(_conv(image, *w["conv_a"], stride=2), 0)
    a = np.maximum(gamma * (_conv(r, *w["conv_b"]) - mean) / np.sqrt(var + _BN_EPSILON)
                   + beta, 0)
    z = _conv(a, *w["conv_c"]) + _conv(r, *w["conv_s"])
    kernel_c = w["conv_c"][0]
    wd, bd = w["fc"]
    logits = np.maximum(z, 0).mean(axis=(0, 1)) @ wd + bd
    c = int(np.argmax(logits)) if class_index is None else class_index
    dz = (z > 0) * wd[:, c] / 9.0                          # d logit_c / d z
    da = np.zeros_like(a)                                  # back through conv_c only
    for i in range(3):
        for j in range(3):
            da[i:i + 3, j:j + 3] += np.einsum("hwko,o->hwk", kernel_c, dz[i, j])
    cam = np.maximum(np.einsum("hwk,k->hw", a, da.mean(axis=(0, 1))), 0)
    cam = np.maximum(_bilinear(cam, image.shape[:2]), 0)
    return (cam / cam.max() if cam.max() > 0 else cam), c


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_matches_a_float64_reference(fmt):
    # Every backend meets the same float64 numbers, so the three agree with
    # each other on the same weights.
    model = _small_net(fmt)
    images = np.random.default_rng(3).normal(size=(3, 11, 11, 2))
    references = np.stack([_reference_gradcam(im)[0] for im in images])
    assert (references.max(axis=(1, 2)) == 1).all()   # no degenerate all-zero maps
    x = images if fmt == "channels_last" else images.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(gradcam(model, x, layer="relu_b"), references, atol=1e-5)
    if fmt == "channels_first":
        return
    # Each class of the first image, chosen explicitly.
    expected = np.stack([_reference_gradcam(images[0], c)[0] for c in range(3)])
    np.testing.assert_allclose(
        gradcam(model, np.repeat(x[:1], 3, axis=0), class_index=[0, 1, 2], layer="relu_b"),
        expected, atol=1e-5)


def test_default_layer_is_the_last_convolution_followed_to_the_head():
    # VGG: relu5_3, before the last pool, as in the Grad-CAM paper; ResNet: the
    # last block's output, after the addition; DenseNet: the final norm's ReLU.
    expected = {"alexnet": "features_11", "vgg16": "features_29",
                "resnet50": "layer4_2_relu", "densenet121": "relu",
                "googlenet": "inception5b_concat", "efficientnet_b0": "features_8_2"}
    for name, layer in expected.items():
        model = symbolic(name)   # shared with the profile tests
        assert default_feature_map(model)._keras_history.operation.name == layer, name


def test_a_named_layer_and_the_resize_to_the_input():
    model = _small_net()
    x = np.random.default_rng(2).normal(size=(1, 11, 11, 2)).astype("float32")
    assert default_feature_map(model)._keras_history.operation.name == "relu_z"
    heat = gradcam(model, x)   # relu_z: a 3x3 map, enlarged to 11x11
    assert heat.shape == (1, 11, 11)
    assert heat.max() == pytest.approx(1.0) and heat.min() >= 0.0


def test_bad_arguments_are_value_errors():
    model = _small_net()
    x = np.zeros((1, 11, 11, 2), "float32")
    with pytest.raises(ValueError, match="class_index must be"):
        gradcam(model, x, class_index=3)
    with pytest.raises(ValueError, match="class_index must be"):
        gradcam(model, x, class_index=[0, 1])
    with pytest.raises(ValueError, match="no layer of that name.*relu_b"):
        gradcam(model, x, layer="relu9")
    with pytest.raises(ValueError, match="not a feature map"):
        gradcam(model, x, layer="fc")
    side = keras.layers.Conv2D(2, 1, name="side")(model.get_layer("relu_a").output)
    two_outputs = keras.Model(model.inputs, [model.outputs[0], side])
    with pytest.raises(ValueError, match="'side' does not lead to the first output"):
        gradcam(two_outputs, x, layer="side")
    with pytest.raises(ValueError, match=r"images must be model input of shape \(N,\) \+ "):
        gradcam(model, np.zeros((1, 12, 11, 2)))
