import keras
import numpy as np
import pytest
from keras.src import testing

from kcnn.layers import StochasticDepth


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _row_values(y, x):
    """Per row: 0 if the row is all zero, 1 if it equals x, else NaN."""
    zero = np.all(y == 0, axis=tuple(range(1, y.ndim)))
    kept = np.all(np.isclose(y, x, rtol=1e-6), axis=tuple(range(1, y.ndim)))
    return np.where(zero, 0.0, np.where(kept, 1.0, np.nan))


class StochasticDepthLayerTest(testing.TestCase):
    def test_keras_layer_checks(self):
        self.run_layer_test(
            StochasticDepth, init_kwargs={"rate": 0.5, "seed": 1},
            input_shape=(4, 3, 5, 2), expected_output_shape=(4, 3, 5, 2),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1, supports_masking=True)


def test_inference_is_the_identity():
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    layer = StochasticDepth(0.9)
    np.testing.assert_array_equal(_numpy(layer(x)), x)
    np.testing.assert_array_equal(_numpy(layer(x, training=False)), x)


def test_rate_zero_is_the_identity_in_training():
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(_numpy(StochasticDepth(0.0)(x, training=True)), x)


def test_row_mode_zeroes_whole_rows_and_scales_the_rest():
    rate = 0.5
    x = np.random.default_rng(0).normal(size=(64, 3, 3, 2)).astype("float32")
    y = _numpy(StochasticDepth(rate, seed=3)(x, training=True))
    rows = _row_values(y, x / (1 - rate))
    assert not np.isnan(rows).any(), "a row was neither dropped nor kept whole"
    assert 0 < rows.sum() < len(rows), "expected some rows dropped and some kept"


def test_batch_mode_drops_the_whole_batch_or_nothing():
    x = np.ones((4, 2, 2, 3), "float32")
    layer = StochasticDepth(0.5, mode="batch", seed=0)
    outcomes = set()
    for _ in range(20):
        y = _numpy(layer(x, training=True))
        assert np.unique(y).size == 1
        outcomes.add(float(y[0, 0, 0, 0]))
    assert outcomes == {0.0, 2.0}


def test_training_preserves_the_mean():
    rate = 0.3
    x = np.ones((4000, 2, 2, 1), "float32")
    y = _numpy(StochasticDepth(rate, seed=5)(x, training=True))
    # Each row is 0 or 1 / 0.7: the mean of 4000 rows has a standard deviation
    # of sqrt(rate / (1 - rate) / 4000) = 0.01.
    assert abs(y.mean() - 1.0) < 0.05
    assert abs(np.mean(y[:, 0, 0, 0] == 0) - rate) < 0.04


def test_rate_one_drops_every_row():
    x = np.ones((5, 2, 2, 1), "float32")
    np.testing.assert_array_equal(_numpy(StochasticDepth(1.0)(x, training=True)), 0)


def test_a_seed_makes_the_drops_repeatable():
    x = np.ones((32, 2, 2, 1), "float32")
    a = _numpy(StochasticDepth(0.5, seed=7)(x, training=True))
    b = _numpy(StochasticDepth(0.5, seed=7)(x, training=True))
    np.testing.assert_array_equal(a, b)


def test_config_round_trip():
    layer = StochasticDepth(0.25, mode="batch", seed=11, name="sd")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, StochasticDepth)
    assert (restored.rate, restored.mode, restored.seed, restored.name) == (0.25, "batch", 11, "sd")


def test_saved_model_round_trip(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Add()([inputs, StochasticDepth(0.5)(keras.layers.Dense(4)(inputs))])
    model = keras.Model(inputs, outputs)
    path = tmp_path / "sd.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[2].get_config()["rate"] == 0.5
    x = np.ones((3, 4), "float32")
    np.testing.assert_array_equal(_numpy(loaded(x)), _numpy(model(x)))


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.5", True, None])
def test_bad_rate_is_refused(rate):
    with pytest.raises(ValueError, match=r"rate must be a probability in \[0, 1\]"):
        StochasticDepth(rate)


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match=r"mode must be 'row' or 'batch'; received mode='col'"):
        StochasticDepth(0.1, mode="col")


def test_trains_inside_a_compiled_train_step():
    # On JAX `fit` compiles the step (jit_compile="auto" is on there): the
    # seed generator's state must thread through the jitted function.
    inputs = keras.Input((6,))
    branch = StochasticDepth(0.5, seed=0)(keras.layers.Dense(6)(inputs))
    x = keras.layers.Add()([inputs, branch])
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer="sgd", loss="mse")
    data = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    history = model.fit(data, data[:, :1], batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    if keras.backend.backend() == "jax":
        assert model.jit_compile
