import keras
import numpy as np
import pytest
from keras.src import testing

from kcnn.layers import AdaptiveAveragePooling2D, MaxPooling2D, TorchMaxPooling2D
from tests.utils import assert_same_sgd_step


def torch_max_pool_reference(x, k, s, p, ceil_mode):
    """torch's MaxPool2d on an NHWC array, written from its definition.

    `k`, `s`, `p`: ints or (height, width) pairs. Output size as ATen's
    `pooling_output_shape`; each window is clipped to the input (padding never
    wins the max).
    """
    (kh, kw), (sh, sw), (ph, pw) = (v if isinstance(v, tuple) else (v, v)
                                    for v in (k, s, p))

    def out_size(n, k, s, p):
        out = (n + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= n + p:
            out -= 1
        return out

    batch, h, w, c = x.shape
    y = np.empty((batch, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw), c), x.dtype)
    for i in range(y.shape[1]):
        r0, r1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
        for j in range(y.shape[2]):
            c0, c1 = max(j * sw - pw, 0), min(j * sw - pw + kw, w)
            y[:, i, j] = x[:, r0:r1, c0:c1].max(axis=(1, 2))
    return y


# Output sizes printed by torch.nn.functional.max_pool2d (torch 2.14).
TORCH_SIZES = [
    # (pool_size, strides, padding, ceil_mode, input size, torch's output size)
    (3, 2, 0, True, 112, 56), (3, 2, 0, True, 8, 4), (3, 2, 0, True, 2, 1),
    (3, 2, 0, False, 8, 3), (2, 2, 0, True, 7, 4), (2, 2, 0, True, 1, 1),
    (3, 1, 1, True, 5, 5), (2, 2, 1, True, 3, 2), (2, 2, 1, True, 4, 3),
    (3, 2, 1, False, 112, 56), (3, 2, 1, True, 6, 4),
]


def test_output_sizes_are_torchs():
    for k, s, p, ceil_mode, size, expected in TORCH_SIZES:
        layer = TorchMaxPooling2D(k, s, p, ceil_mode, data_format="channels_last")
        assert layer.compute_output_shape((None, size, size, 4)) == (
            None, expected, expected, 4)
        x = np.zeros((1, size, size, 1), "float32")
        assert torch_max_pool_reference(x, k, s, p, ceil_mode).shape[1] == expected


# GoogLeNet's three pools, a padded floor-mode pool (ResNet's stem) and a
# padded ceil-mode pool whose last window would start in the padding.
CONFIGS = [(3, 2, 0, True), (2, 2, 0, True), (3, 1, 1, True), (3, 2, 1, False),
           (2, 2, 1, True)]


@pytest.mark.parametrize("k, s, p, ceil_mode", CONFIGS)
def test_matches_torch_reference_at_odd_and_even_sizes(k, s, p, ceil_mode):
    layer = TorchMaxPooling2D(k, s, p, ceil_mode, data_format="channels_last")
    rng = np.random.default_rng(0)
    for h, w in [(7, 7), (8, 8), (9, 12), (14, 13)]:
        # Negative inputs: padding must act as -inf, not as zero.
        x = rng.normal(size=(2, h, w, 3)).astype("float32") - 1.0
        y = keras.ops.convert_to_numpy(layer(x))
        np.testing.assert_array_equal(y, torch_max_pool_reference(x, k, s, p, ceil_mode))
        assert y.shape == layer.compute_output_shape(x.shape)


def test_channels_first_matches_channels_last():
    x = np.random.default_rng(1).normal(size=(2, 9, 12, 3)).astype("float32")
    last = TorchMaxPooling2D(3, 2, ceil_mode=True, data_format="channels_last")(x)
    first = TorchMaxPooling2D(3, 2, ceil_mode=True, data_format="channels_first")(
        np.transpose(x, (0, 3, 1, 2)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first),
                                  np.transpose(keras.ops.convert_to_numpy(last), (0, 3, 1, 2)))


def test_pairs_of_sizes_and_unknown_dimensions():
    layer = TorchMaxPooling2D((3, 2), (2, 1), (1, 0), ceil_mode=True,
                              data_format="channels_last")
    assert layer.compute_output_shape((None, None, 10, 8)) == (None, None, 9, 8)
    x = np.random.default_rng(2).normal(size=(1, 11, 10, 2)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(
        y, torch_max_pool_reference(x, (3, 2), (2, 1), (1, 0), True))
    assert y.shape == (1, 6, 9, 2)


def test_too_small_input_and_bad_arguments_are_refused():
    layer = TorchMaxPooling2D(3, 2, data_format="channels_last")
    with pytest.raises(ValueError, match="too small"):
        layer.compute_output_shape((None, 2, 2, 1))
    with pytest.raises(ValueError, match=r"padding=2"):
        TorchMaxPooling2D(3, padding=2)
    with pytest.raises(ValueError, match=r"pool_size=0"):
        TorchMaxPooling2D(0)
    with pytest.raises(ValueError, match=r"strides=\(1, 2, 3\)"):
        TorchMaxPooling2D(3, strides=(1, 2, 3))
    with pytest.raises(ValueError, match=r"ceil_mode='yes'"):
        TorchMaxPooling2D(3, ceil_mode="yes")
    with pytest.raises(ValueError, match=r"data_format='nhwc'"):
        TorchMaxPooling2D(3, data_format="nhwc")


def test_config_round_trip():
    layer = TorchMaxPooling2D((3, 2), 2, (1, 0), ceil_mode=True,
                              data_format="channels_first", name="pool")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, TorchMaxPooling2D)
    assert clone.get_config() == layer.get_config()
    assert (clone.pool_size, clone.strides, clone.padding) == ((3, 2), (2, 2), (1, 0))


class TorchMaxPooling2DLayerTest(testing.TestCase):
    def test_keras_layer_checks(self):
        # Build, symbolic and eager calls, serialization, a training step and
        # mixed precision, as Keras tests its own layers.
        self.run_layer_test(
            TorchMaxPooling2D,
            init_kwargs={"pool_size": 3, "strides": 2, "padding": 1,
                         "ceil_mode": True, "data_format": "channels_last"},
            input_shape=(2, 8, 9, 3),
            expected_output_shape=(2, 5, 5, 3),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            supports_masking=False,
        )


# AdaptiveAveragePooling2D: torch's bins at every size, inside compiled functions too.

ADAPTIVE_CASES = [((1, 1), (6, 6)), ((2, 3), (6, 6)), ((5, 5), (7, 7)), ((13, 9), (6, 6)),
                  ((7, 7), (7, 7)), ((4, 4), (3, 5))]


@pytest.mark.parametrize("size, out", ADAPTIVE_CASES)
def test_adaptive_average_pool_equals_torch_in_a_compiled_model(size, out):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    inputs = keras.Input((*size, 3))
    model = keras.Model(inputs, AdaptiveAveragePooling2D(out, data_format="channels_last")(inputs))
    expected = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), out).numpy().transpose(0, 2, 3, 1)
    got = model.predict(x, verbose=0)  # compiled: tf.function, jax.jit
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    cf = AdaptiveAveragePooling2D(out, data_format="channels_first")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cf(x.transpose(0, 3, 1, 2))),
                               expected.transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-6)


def test_adaptive_average_pool_is_keras_layer_and_serializes():
    layer = AdaptiveAveragePooling2D((6, 6), name="avgpool")
    assert isinstance(layer, keras.layers.AdaptiveAveragePooling2D)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is AdaptiveAveragePooling2D and restored.output_size == (6, 6)
    with pytest.raises(ValueError, match="needs a known input height and width"):
        AdaptiveAveragePooling2D(6).build((None, None, None, 3))


@pytest.mark.parametrize("builder, kwargs, shape", [
    ("alexnet", {}, (63, 63, 3)),                       # a 1x1 map pooled up to 6x6
    ("alexnet", {"variant": "paper", "groups": 1}, (67, 67, 3)),
    ("simple_cnn", {}, (8, 8, 1)),                      # 1x1 up to 3x3
])
def test_heads_work_at_the_smallest_inputs_when_compiled(builder, kwargs, shape):
    import kcnn

    model = getattr(kcnn.models, builder)(input_shape=shape, classes=4, **kwargs)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert model.predict(x, verbose=0).shape == (2, 4)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, np.array([0, 1]))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("pool, strides, padding", [(3, 2, "valid"), (2, None, "valid"),
                                                     ((3, 2), (1, 2), "valid"), (3, 2, "same")])
def test_max_pooling_equals_keras_values_and_gradients(pool, strides, padding, data_format):
    """kcnn's MaxPooling2D (a view of the input on torch) is Keras's layer, both layouts."""
    shape = (6, 9, 9) if data_format == "channels_first" else (9, 9, 6)
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype("float32")
    kwargs = dict(pool_size=pool, strides=strides, padding=padding, data_format=data_format)
    ours, theirs = MaxPooling2D(**kwargs), keras.layers.MaxPooling2D(**kwargs)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours(x)),
                                  keras.ops.convert_to_numpy(theirs(x)))
    assert ours.get_config() == {**theirs.get_config(), "name": ours.name}

    def build(layer_cls):  # a conv in front receives the pool's input gradient
        inputs = keras.Input(shape)
        h = keras.layers.Conv2D(4, 1, data_format=data_format)(inputs)
        return keras.Model(inputs, keras.layers.Flatten()(layer_cls(**kwargs)(h)))

    y = np.zeros((2,) + tuple(build(MaxPooling2D).output.shape[1:]), "float32")
    assert_same_sgd_step(build, [MaxPooling2D, keras.layers.MaxPooling2D], x, y)
