import keras
import numpy as np
import pytest
from keras.src import testing

from kcnn.layers.conv import Conv2D, DepthwiseConv2D, GroupedConv2D, grouped_conv
from tests.utils import assert_same_sgd_step


def _pair(groups, filters=8, kernel_size=3, **kwargs):
    """A GroupedConv2D and a Conv2D of the same configuration."""
    ours = GroupedConv2D(filters, kernel_size, groups=groups, **kwargs)
    reference = keras.layers.Conv2D(filters, kernel_size, groups=groups, **kwargs)
    return ours, reference


def _inputs(channels_first, channels=6, size=9, batch=2):
    shape = (batch, channels, size, size) if channels_first else (batch, size, size, channels)
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def _build_equal(ours, reference, x):
    ours(x)
    reference(x)
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in reference.get_weights()]
    ours.set_weights(weights)
    reference.set_weights(weights)


@pytest.mark.parametrize("groups", [2, 3])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_output_equals_keras_grouped_conv2d(groups, data_format):
    kwargs = dict(strides=2, padding="same", data_format=data_format)
    ours, reference = _pair(groups, filters=12, **kwargs)
    x = _inputs(data_format == "channels_first")
    _build_equal(ours, reference, x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(reference(x)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_both_formulations_equal_ops_conv_on_this_backend(native, data_format):
    """The split form and the native form each equal the grouped `ops.conv`."""
    x = _inputs(data_format == "channels_first")
    kernel = np.random.default_rng(2).normal(size=(3, 3, 3, 8)).astype("float32")
    expected = keras.ops.conv(x, kernel, data_format=data_format, padding="valid")
    got = grouped_conv(x, kernel, 2, data_format=data_format, native=native)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                               keras.ops.convert_to_numpy(expected),
                               rtol=1e-5, atol=1e-5)


def test_weights_have_conv2d_layout():
    ours, reference = _pair(2, filters=8, kernel_size=(5, 3))
    ours.build((2, 9, 9, 6))
    reference.build((2, 9, 9, 6))
    assert [tuple(w.shape) for w in ours.weights] == [(5, 3, 3, 8), (8,)]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in reference.weights]


def test_gradients_equal_keras_grouped_conv2d():
    """One SGD step changes every weight alike, before and inside the grouped layer.

    The 1x1 convolution in front receives the grouped layer's input gradient,
    so equal updates there mean equal input gradients too.
    """
    x = _inputs(False, channels=4)
    y = np.random.default_rng(3).normal(size=(2, 9, 9, 8)).astype("float32")
    assert_same_sgd_step(lambda layer_cls: keras.Sequential([
        keras.Input((9, 9, 4)),
        keras.layers.Conv2D(6, 1),
        layer_cls(8, 3, padding="same", groups=2),
    ]), (GroupedConv2D, keras.layers.Conv2D), x, y)


def test_groups_1_is_conv2d():
    ours, reference = _pair(1, filters=5)
    x = _inputs(False, channels=4)
    _build_equal(ours, reference, x)
    assert tuple(ours.kernel.shape) == (3, 3, 4, 5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(reference(x)),
                               rtol=1e-5, atol=1e-5)


def test_config_round_trip():
    layer = GroupedConv2D(8, 3, strides=2, groups=4, padding="same",
                          data_format="channels_first", name="g")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(restored) is GroupedConv2D
    assert restored.get_config() == layer.get_config()


def test_keras_file_round_trip(tmp_path):
    model = keras.Sequential([keras.Input((9, 9, 6)), GroupedConv2D(8, 3, groups=2)])
    x = _inputs(False)
    path = tmp_path / "grouped.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.layers[0], GroupedConv2D)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored(x)),
                                  keras.ops.convert_to_numpy(model(x)))


class GroupedConv2DLayerTest(testing.TestCase):
    """Keras's own layer checks: build, serialization, a training step, mixed precision."""

    def test_run_layer_test(self):
        self.run_layer_test(
            GroupedConv2D,
            init_kwargs={"filters": 6, "kernel_size": 3, "groups": 3, "padding": "same"},
            input_shape=(2, 5, 5, 6),
            expected_output_shape=(2, 5, 5, 6),
            expected_num_trainable_weights=2,
            expected_num_non_trainable_weights=0,
        )


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_equals_keras_conv2d_values_and_gradients(strides, data_format):
    """kcnn's Conv2D (1x1 as a matmul on JAX) trains exactly like Keras's.

    A 3x3 and a 1x1 convolution, one SGD step: equal outputs before the step
    and equal updates of every weight (the 3x3 in front receives the 1x1's
    input gradient, so its updates check that gradient too).
    """
    channels_first = data_format == "channels_first"
    x = _inputs(channels_first, channels=4, size=9)
    out = 5 if strides == 2 else 9
    y = np.random.default_rng(4).normal(
        size=(2, 7, out, out) if channels_first else (2, out, out, 7)).astype("float32")
    shape = (4, 9, 9) if channels_first else (9, 9, 4)

    def build(layer_cls):
        return keras.Sequential([
            keras.Input(shape),
            layer_cls(6, 3, padding="same", data_format=data_format),
            layer_cls(7, 1, strides=strides, padding="same", data_format=data_format),
        ])

    ours, reference = build(Conv2D), build(keras.layers.Conv2D)
    reference.set_weights(ours.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(reference(x)),
                               rtol=1e-5, atol=1e-5)
    assert_same_sgd_step(build, (Conv2D, keras.layers.Conv2D), x, y)


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="the 1x1 convolution runs as a matmul on JAX only")
def test_jax_runs_1x1_convolutions_as_matmuls():
    import jax

    x = np.zeros((2, 9, 9, 4), "float32")
    pointwise, three = Conv2D(6, 1, strides=2), Conv2D(6, 3)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(pointwise.__call__)(x))
    assert "conv_general_dilated" in str(jax.make_jaxpr(three.__call__)(x))


def test_keras_file_of_keras_conv2d_loads_and_equals_kcnn_conv2d(tmp_path):
    x = _inputs(False, channels=4)
    old = keras.Sequential([keras.Input((9, 9, 4)), keras.layers.Conv2D(6, 1, strides=2)])
    old.save(tmp_path / "old.keras")
    restored = keras.saving.load_model(tmp_path / "old.keras")
    ours = keras.Sequential([keras.Input((9, 9, 4)), Conv2D(6, 1, strides=2)])
    ours.set_weights(restored.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(old(x)), rtol=1e-5, atol=1e-5)
    ours.save(tmp_path / "ours.keras")
    assert type(keras.saving.load_model(tmp_path / "ours.keras").layers[0]) is Conv2D


@pytest.mark.parametrize("layer_cls", [Conv2D, DepthwiseConv2D])
def test_inference_follows_every_change_of_the_kernel(layer_cls):
    """torch keeps each kernel's channels_last copy between calls without autograd
    (`_torch_weight`): an assignment, new weights and a training step must
    each reach the next prediction, on every backend."""
    args = (6, 3) if layer_cls is Conv2D else (3,)
    model = keras.Sequential([keras.Input((9, 9, 4)),
                              layer_cls(*args, padding=1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    layer = model.layers[0]
    x = _inputs(False, channels=4)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    first = model.predict_on_batch(x)
    assert np.abs(first).max() > 0
    np.testing.assert_allclose(model.predict_on_batch(x), first, rtol=0, atol=0)
    layer.kernel.assign(kernel * 2)
    np.testing.assert_allclose(model.predict_on_batch(x), 2 * first, rtol=1e-5, atol=1e-5)
    model.set_weights([kernel * 3])
    np.testing.assert_allclose(model.predict_on_batch(x), 3 * first, rtol=1e-5, atol=1e-5)
    model.train_on_batch(x, np.zeros_like(first))
    trained = keras.ops.convert_to_numpy(layer.kernel)
    assert np.abs(trained - kernel * 3).max() > 0
    reference = keras.Sequential([keras.Input((9, 9, 4)),
                                  layer_cls(*args, padding=1, use_bias=False)])
    reference.set_weights([trained])
    np.testing.assert_allclose(model.predict_on_batch(x), reference.predict_on_batch(x),
                               rtol=1e-5, atol=1e-5)
