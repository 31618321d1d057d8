"""Discriminative learning rates, checked against hand-computed updates.

A two-layer linear model with a squared-error loss has gradients simple
enough to write in numpy, so each group's update inside `model.fit` (TF
graph, JAX stateless, torch) is compared with the optimizer's formula at
that group's rate.
"""

import keras
import numpy as np
import pytest
from kcnn import transfer
from kcnn.transfer import DiscriminativeOptimizer

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 4)).astype("float32")
T = RNG.normal(size=(8, 2)).astype("float32")


def _model():
    inputs = keras.Input((4,))
    h = keras.layers.Dense(3, name="body")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(h))


def _weights(model):
    return {v.path: keras.ops.convert_to_numpy(v).astype("float64") for v in model.weights}


def _grads(w):
    """d mean((y - t)^2) / d w for y = (x W1 + b1) W2 + b2, as Keras's "mse"."""
    x, t = X.astype("float64"), T.astype("float64")
    h = x @ w["body/kernel"] + w["body/bias"]
    dy = (h @ w["head/kernel"] + w["head/bias"] - t) / len(x)
    dh = dy @ w["head/kernel"].T
    return {"head/kernel": h.T @ dy, "head/bias": dy.sum(0),
            "body/kernel": x.T @ dh, "body/bias": dh.sum(0)}


def _fit_one_step(model, optimizer):
    model.compile(optimizer=optimizer, loss="mse")
    optimizer.build(model.trainable_variables)
    model.fit(X, T, batch_size=len(X), epochs=1, shuffle=False, verbose=0)


def test_adamw_first_update_of_each_group_is_adamw_at_that_groups_rate(tmp_path):
    model = _model()
    lr, decay, eps, b1, b2 = 0.01, 0.1, 0.1, 0.9, 0.999
    optimizer = DiscriminativeOptimizer(
        keras.optimizers.AdamW(lr, weight_decay=decay, epsilon=eps),
        groups=[(["body"], 0.1), (["head"], 1.0)])
    before = _weights(model)
    _fit_one_step(model, optimizer)
    after = _weights(model)
    grads = _grads(before)
    for path, w in before.items():
        rate = lr * (0.1 if path.startswith("body") else 1.0)
        g = grads[path]
        m, v = (1 - b1) * g, (1 - b2) * g * g
        step = rate * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)
        expected = w - w * decay * rate - step
        # float32 weights near 1 resolve changes to about 1e-7
        np.testing.assert_allclose(after[path] - w, expected - w, rtol=1e-4, atol=2e-7,
                                   err_msg=path)
    # The body really moved at a tenth of the head's rate, not at the base rate.
    g = grads["body/kernel"]
    base = lr * np.sqrt(1 - b2) * g / (np.sqrt((1 - b2) * g * g) + eps)
    assert np.abs(after["body/kernel"] - before["body/kernel"] + base).max() > 1e-4

    # The optimizer (groups, rates, state) travels with the model.
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, DiscriminativeOptimizer)
    assert loaded.optimizer.factors == [0.1, 1.0]
    assert len(loaded.optimizer.variables) == len(optimizer.variables)
    for saved, restored in zip(optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored),
                                      keras.ops.convert_to_numpy(saved))


@pytest.mark.parametrize("groups", [
    [(["body"], 1.0), (["head"], 1.0)],  # the head's group is untouched by unfreezing
    [(["body", "head"], 1.0)],  # one group that grows: rebuilt, state copied over
], ids=["group_per_layer", "one_group"])
def test_momentum_of_training_weights_survives_unfreezing(groups):
    lr, momentum = 0.1, 0.9
    model = _model()
    optimizer = DiscriminativeOptimizer(keras.optimizers.SGD(lr, momentum=momentum), groups)
    w0 = _weights(model)
    model.get_layer("body").trainable = False
    _fit_one_step(model, optimizer)
    w1 = _weights(model)
    np.testing.assert_array_equal(w1["body/kernel"], w0["body/kernel"])
    model.get_layer("body").trainable = True
    _fit_one_step(model, optimizer)  # compile again, build on the new variables
    w2 = _weights(model)
    g2 = _grads(w1)
    for path in ("head/kernel", "head/bias"):  # velocity 0.9 * v1 - lr * g2
        velocity = momentum * (w1[path] - w0[path]) - lr * g2[path]
        np.testing.assert_allclose(w2[path], w1[path] + velocity, rtol=1e-5, atol=1e-6)
        assert np.abs(momentum * (w1[path] - w0[path])).max() > 1e-3
    for path in ("body/kernel", "body/bias"):  # a fresh start: plain -lr * g
        np.testing.assert_allclose(w2[path], w1[path] - lr * g2[path], rtol=1e-5, atol=1e-6)
    steps = [int(keras.ops.convert_to_numpy(optimizer.group_optimizer(i).iterations))
             for i in range(len(groups))]
    assert steps == ([1, 2] if len(groups) == 2 else [2])


def test_learning_rate_changes_and_schedules_reach_every_group():
    optimizer = DiscriminativeOptimizer(keras.optimizers.SGD(0.5), [(["body"], 0.1)])
    rate = lambda i: float(keras.ops.convert_to_numpy(optimizer.group_learning_rate(i)))
    assert rate(0) == pytest.approx(0.05) and rate(1) == pytest.approx(0.5)
    optimizer.learning_rate = 0.2  # what ReduceLROnPlateau does
    assert rate(0) == pytest.approx(0.02) and rate(1) == pytest.approx(0.2)
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, 1, 0.5)
    optimizer = DiscriminativeOptimizer(keras.optimizers.AdamW(schedule), [(["body"], 0.1)])
    assert rate(0) == pytest.approx(0.1)
    optimizer.iterations.assign(2)
    assert rate(0) == pytest.approx(0.025)
    clone = DiscriminativeOptimizer.from_config(optimizer.get_config())
    assert clone.factors == [0.1]
    assert isinstance(clone.get_config()["learning_rate"], dict)


def test_updating_variables_it_was_not_built_on_raises():
    model = _model()
    optimizer = DiscriminativeOptimizer("sgd", [(["body"], 0.1)])
    optimizer.build(model.get_layer("head").trainable_variables)
    kernel = model.get_layer("body").kernel
    with pytest.raises(ValueError, match="optimizer.build"):
        optimizer.apply([keras.ops.zeros(kernel.shape)], [kernel])


def test_discriminative_optimizer_gives_each_stage_a_decayed_rate():
    import kcnn

    model = kcnn.lenet5()  # stages conv1, conv2, fc1; head fc3
    optimizer = transfer.discriminative_optimizer(model, "adamw", backbone=0.1, decay=0.5)
    assert optimizer.factors == pytest.approx([1.0, 0.1, 0.05, 0.025])


@pytest.mark.parametrize("make, match", [
    (lambda: DiscriminativeOptimizer("sgd", [(["a"], 0)]), "factor"),
    (lambda: DiscriminativeOptimizer("sgd", [(["a"], 1.0), (["a"], 2.0)]), "two groups"),
    (lambda: DiscriminativeOptimizer("sgd", "a"), "groups"),
    (lambda: DiscriminativeOptimizer("nope", []), "optimizer"),
    (lambda: DiscriminativeOptimizer(keras.optimizers.AdamW(use_ema=True), []), "use_ema"),
    (lambda: DiscriminativeOptimizer(
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()), []), "wrapper"),
    (lambda: transfer.discriminative_optimizer(_model(), backbone=0), "backbone"),
    (lambda: transfer.discriminative_optimizer(_model(), decay=2.0), "decay"),
])
def test_bad_arguments_raise_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
