"""Gradient accumulation and clipping with kcnn's coupled-decay SGD, on every backend.

`kcnn.train(..., gradient_accumulation_steps=, clipnorm=)` hands these to the
recipe's optimizer; the checks here are that they mean what a user expects
with the paper's momentum and weight decay in place.
"""

import keras
import numpy as np

from kcnn.optimizers import SGD


def tiny_model():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs)


def weights_of(model):
    return [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights]


def data(n):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 6)).astype("float32"),
            rng.integers(0, 3, size=n).astype("int64"))


def trained(batch_size, steps_of_data, **optimizer_options):
    keras.utils.set_random_seed(1)
    model = tiny_model()
    model.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9, l2=5e-4,
                                **optimizer_options),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(steps_of_data)
    model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
    return weights_of(model)


def test_accumulating_two_half_batches_equals_one_full_batch():
    # Two epochs of 16 examples: 2 full-batch updates, or 4 half batches
    # accumulated in pairs (Keras averages the accumulated gradients).
    full = trained(8, 16)
    accumulated = trained(4, 16, gradient_accumulation_steps=2)
    for a, b in zip(accumulated, full):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)
    not_accumulated = trained(4, 16)
    assert max(np.abs(a - b).max() for a, b in zip(not_accumulated, full)) > 1e-3


def test_clipnorm_bounds_each_variables_step():
    keras.utils.set_random_seed(1)
    model = tiny_model()
    before = weights_of(model)
    # No momentum and no decay: the step is -lr * clipped gradient.
    model.compile(optimizer=SGD(learning_rate=1.0, clipnorm=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(8)
    model.fit(x * 100.0, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    steps = [np.linalg.norm(a - b) for a, b in zip(weights_of(model), before)]
    assert max(steps) <= 0.01 + 1e-6
    assert min(steps) > 0.009  # the gradients were large: every variable was clipped
