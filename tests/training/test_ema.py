"""`ModelEMA`: torchvision's moving average of the weights, on every backend.

The reference is torch itself: the weights a Keras `fit` goes through, fed to
`torch.optim.swa_utils.AveragedModel(use_buffers=True)` on the schedule of
torchvision's `references/classification/train.py`, give the callback's
average. A tiny conv + batch-norm model on 8x8 inputs, 5 batches an epoch.
"""

import keras
import numpy as np
import pytest

from kcnn.training.ema import ModelEMA

BATCH = 8
BATCHES = 5  # with steps=2: updates after batches 0, 2 and 4 of each epoch


def tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.5, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="fc")(x)
    return keras.Model(inputs, outputs)


def compiled(weights):
    model = tiny_model()
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(y[:, None, None, None] - 1.0, 1.0, (n, 8, 8, 3)).astype("float32")
    return x, y


def numpy_weights(model):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]


class Recorder(keras.callbacks.Callback):
    """Each batch's weights; at each epoch's end what a backup would hold then
    (live weights, optimizer variables) and the average's state."""

    def __init__(self, ema):
        super().__init__()
        self.ema, self.batches, self.live, self.optimizer, self.averages = ema, [], [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1].append(numpy_weights(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.live.append(numpy_weights(self.model))
        self.optimizer.append([keras.ops.convert_to_numpy(v)
                               for v in self.model.optimizer.variables])
        self.averages.append(self.ema.get_state())


EMA = {"decay": 0.6, "steps": 2, "warmup_epochs": 1}
EPOCHS = 3


@pytest.fixture(scope="module")
def start():
    return numpy_weights(tiny_model())


@pytest.fixture(scope="module")
def whole(start):
    """Three epochs in one go, the first a warm-up."""
    model = compiled(start)
    ema = ModelEMA(**EMA)
    recorder = Recorder(ema)
    model.fit(*data(BATCH * BATCHES, 0), batch_size=BATCH, epochs=EPOCHS, shuffle=False,
              verbose=0, callbacks=[ema, recorder])
    return {"model": model, "ema": ema, "recorder": recorder, "final": numpy_weights(model)}


@pytest.fixture(scope="module")
def validated(start):
    """Two epochs with validation data."""
    model = compiled(start)
    ema = ModelEMA(decay=0.5, steps=2)
    recorder = Recorder(ema)
    history = model.fit(*data(BATCH * BATCHES, 0), batch_size=BATCH, epochs=2,
                        shuffle=False, validation_data=data(16, 1), verbose=0,
                        callbacks=[ema, recorder])
    return {"model": model, "history": history.history, "recorder": recorder,
            "final": numpy_weights(model)}


def test_average_equals_torch_averaged_model_on_train_py_schedule(whole):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    recorder, weights = whole["recorder"], whole["model"].weights
    # The model's weights as a torch module: parameters for the trainable
    # ones, buffers for the batch-norm statistics, which use_buffers=True averages.
    holder = torch.nn.Module()
    for k, w in enumerate(weights):
        tensor = torch.zeros(tuple(w.shape))
        if w.trainable:
            holder.register_parameter(f"w{k}", torch.nn.Parameter(tensor))
        else:
            holder.register_buffer(f"w{k}", tensor)
    assert len(list(holder.buffers())) == 2  # moving mean and variance
    reference = AveragedModel(holder, multi_avg_fn=get_ema_multi_avg_fn(EMA["decay"]),
                              use_buffers=True)
    # train.py's train_one_epoch: after the step of batch i of an epoch.
    for epoch in range(EPOCHS):
        assert len(recorder.batches[epoch]) == BATCHES
        for i, batch_weights in enumerate(recorder.batches[epoch]):
            holder.load_state_dict({f"w{k}": torch.from_numpy(w)
                                    for k, w in enumerate(batch_weights)})
            if i % EMA["steps"] == 0:
                reference.update_parameters(holder)
                if epoch < EMA["warmup_epochs"]:
                    reference.n_averaged.fill_(0)
        state = recorder.averages[epoch]
        expected = reference.module.state_dict()
        assert state["updates"] == int(reference.n_averaged)
        for k, average in enumerate(state["average"]):
            # Within 1e-6, relative where the value is large (a moving variance
            # of 41 is spaced 3.8e-6 in float32; XLA and torch round differently).
            np.testing.assert_allclose(average, expected[f"w{k}"].numpy(), rtol=1e-6, atol=1e-6,
                                       err_msg=f"epoch {epoch}, {weights[k].path}")
    # Not a copy of the last weights: the average is one.
    assert max(np.abs(a - w).max() for a, w in
               zip(recorder.averages[-1]["average"], recorder.live[-1])) > 1e-3


def test_logged_validation_metrics_are_the_averaged_models(validated):
    model, recorder = validated["model"], validated["recorder"]
    x_val, y_val = data(16, 1)

    def val_loss(weights):  # what evaluate computes, without its set-up
        model.set_weights(weights)
        return float(keras.ops.convert_to_numpy(model.loss(y_val, model(x_val, training=False))))

    for epoch, logged in enumerate(validated["history"]["val_loss"]):
        averaged = val_loss(recorder.averages[epoch]["average"])
        live = val_loss(recorder.live[epoch])
        assert logged == pytest.approx(averaged, abs=1e-5)
        assert abs(live - logged) > 1e-3  # the test tells the two models apart


def test_model_ends_with_the_averaged_weights_and_trains_on_live_ones(validated):
    recorder = validated["recorder"]
    for final, average in zip(validated["final"], recorder.averages[-1]["average"]):
        np.testing.assert_array_equal(final, average)
    assert max(np.abs(a - w).max() for a, w in
               zip(recorder.averages[-1]["average"], recorder.live[-1])) > 1e-3
    # Between epochs (on_epoch_end, where checkpoints are written) the live
    # weights are back, and the next epoch trains on from them.
    assert not all(np.array_equal(a, w) for a, w in
                   zip(recorder.averages[0]["average"], recorder.live[0]))


def test_resumed_run_keeps_the_average(whole):
    """Stopped after epoch 2 of 3 (what a backup holds then: the live weights,
    the optimizer's variables and the average's state), restored into a new
    model and callback, one more epoch equals the three epochs in one go."""
    recorder = whole["recorder"]
    resumed = compiled(recorder.live[1])
    resumed.optimizer.build(resumed.trainable_variables)
    for variable, value in zip(resumed.optimizer.variables, recorder.optimizer[1]):
        variable.assign(value)
    ema = ModelEMA(**EMA)
    ema.set_state(recorder.averages[1])
    resumed.fit(*data(BATCH * BATCHES, 0), batch_size=BATCH, epochs=EPOCHS,
                initial_epoch=2, shuffle=False, verbose=0, callbacks=[ema])

    assert ema.get_state()["updates"] == whole["ema"].get_state()["updates"] == 6
    for got, expected in zip(numpy_weights(resumed), whole["final"]):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # Restarting the average instead (a first update that copies) is far off.
    assert max(np.abs(a - w).max() for a, w in
               zip(recorder.averages[1]["average"], recorder.live[1])) > 1e-3


def test_adjusted_decay_is_train_py_formula_for_the_recipe():
    # references/classification/train.py: world_size * batch_size * steps / epochs.
    adjust = 1 * 1024 * 32 / 600
    expected = 1.0 - min(1.0, (1.0 - 0.99998) * adjust)
    got = ModelEMA.adjusted_decay(0.99998, steps=32, batch_size=1024, epochs=600)
    assert got == pytest.approx(expected, rel=1e-15)
    assert got == pytest.approx(0.998907733, abs=1e-9)
    # Few epochs and a large batch: alpha is clipped at 1, each update a copy.
    assert ModelEMA.adjusted_decay(0.99, steps=32, batch_size=1024, epochs=10) == 0.0


def test_bad_arguments_are_named():
    for kwargs, message in [
        ({"decay": 1.0}, r"decay must be a number in \[0, 1\); received decay=1.0"),
        ({"decay": -0.1}, "received decay=-0.1"),
        ({"decay": "0.9"}, "received decay='0.9'"),
        ({"steps": 0}, "steps must be a positive integer; received steps=0"),
        ({"steps": 2.5}, "received steps=2.5"),
        ({"warmup_epochs": -1}, "warmup_epochs must be an integer >= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            ModelEMA(**kwargs)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ModelEMA.adjusted_decay(0.99, steps=32, batch_size=0, epochs=10)


def test_bad_states_are_named(start):
    ema = ModelEMA()
    with pytest.raises(ValueError, match="no average yet"):
        ema.get_state()
    with pytest.raises(ValueError, match="keys 'average' and 'updates'; received a dict"):
        ema.set_state({"average": []})
    with pytest.raises(ValueError, match="updates'\\] must be an integer >= 0"):
        ema.set_state({"average": [], "updates": -1})
    ema.set_state({"average": [np.zeros(3)], "updates": 1})
    ema.set_model(compiled(start))
    with pytest.raises(ValueError, match=r"shapes \[\(3,\)\], but this model's weights"):
        ema.on_train_begin()  # where fit applies a state given before it
