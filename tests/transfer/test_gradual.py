"""Gradual unfreezing inside model.fit: frozen stages stay bit-identical."""

import kcnn
import keras
import numpy as np
from kcnn import transfer


def test_each_stage_is_fixed_before_its_epoch_and_trains_after_it():
    model = kcnn.simple_cnn(input_shape=(16, 16, 1), classes=3)
    schedule = transfer.gradual_schedule(model, 3)
    assert schedule == {"fc1": 1, "conv3": 2}  # conv1 and conv2 stay frozen
    stages = {**transfer.stages(model), "head": transfer.head_layers(model)}

    def snapshot():  # every weight, batch-norm moving statistics included
        return {stage: [keras.ops.convert_to_numpy(v).copy()
                        for name in names for v in model.get_layer(name).weights
                        if "seed_generator" not in v.path]
                for stage, names in stages.items()}

    optimizer = transfer.discriminative_optimizer(
        model, keras.optimizers.AdamW(1e-3), backbone=0.5)
    snapshots, head_optimizers = [snapshot()], []

    def on_epoch_end(epoch, logs):
        snapshots.append(snapshot())
        head_optimizers.append(optimizer.group_optimizer(0))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    history = transfer.fit_gradually(
        model, x, y=y, batch_size=8, epochs=3, schedule=schedule, optimizer=optimizer,
        loss="sparse_categorical_crossentropy", metrics=["accuracy"], verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])

    assert history.epoch == [0, 1, 2] and len(history.history["loss"]) == 3
    starts = {**schedule, "head": 0, "conv1": 3, "conv2": 3}
    for stage, start in starts.items():
        for epoch in range(3):
            before, after = snapshots[epoch][stage], snapshots[epoch + 1][stage]
            same = all(np.array_equal(a, b) for a, b in zip(before, after))
            assert same == (epoch < start), (stage, epoch)
    # The head's optimizer kept its state through both recompiles.
    assert all(opt is head_optimizers[0] for opt in head_optimizers)
    steps = {stage: int(keras.ops.convert_to_numpy(optimizer.group_optimizer(i).iterations))
             for i, stage in enumerate(["head", "fc1", "conv3"])}
    assert steps == {"head": 6, "fc1": 4, "conv3": 2}
    assert optimizer.group_optimizer(3) is None  # conv2 never trained


def test_a_plain_keras_optimizer_trains_only_the_scheduled_stages():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="body")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))
    assert list(transfer.stages(model)) == ["body"]
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.weights]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    history = transfer.fit_gradually(model, x, y=y, batch_size=8, epochs=2, schedule={},
                                     optimizer=keras.optimizers.SGD(0.1), loss="mse",
                                     verbose=0)
    after = [keras.ops.convert_to_numpy(w) for w in model.weights]
    same = [np.array_equal(a, b) for a, b in zip(before, after)]
    assert same == [True, True, False, False]  # body kernel and bias, head
    assert history.epoch == [0, 1]
