"""Helpers the tests share (fixtures live in conftest.py)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest


# Counted from the weights' shapes of a model built without weights
# (kcnn.inspect.without_weights): nothing is allocated, and the count is the
# same on every backend.
counted_once = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="backend-independent: parameters counted from weight shapes, read without "
           "allocating weights; runs once, on torch")


def reference_count(name, **kwargs):
    """Trainable parameters of `kcnn.create_model(name, **kwargs)`, built without weights."""
    import kcnn
    from kcnn.inspect import without_weights

    with without_weights():
        return trainable_count(kcnn.create_model(name, **kwargs))


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def run_python(code, backend, timeout=600, env=None):
    """Run `code` in a fresh interpreter on `backend`; return its stdout."""
    env = {**os.environ, **(env or {}), "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                            capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"subprocess on {backend} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result.stdout


def assert_same_sgd_step(build, layer_classes, x, y):
    """`build(layer_cls)` per class, same weights: one SGD step changes every weight alike.

    Gradients compared through a training step on the current backend; a layer
    in front of the one under test receives its input gradient, so equal
    updates there mean equal input gradients too.
    """
    models = []
    for layer_cls in layer_classes:
        keras.utils.set_random_seed(0)
        model = build(layer_cls)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        models.append(model)
    for model in models[1:]:
        model.set_weights(models[0].get_weights())
    before = models[0].get_weights()
    for model in models:
        model.train_on_batch(x, y)
    for w0, ours, reference in zip(before, models[0].get_weights(), models[1].get_weights()):
        assert np.abs(ours - w0).max() > 0
        np.testing.assert_allclose(ours - w0, reference - w0, rtol=1e-4, atol=1e-6)
