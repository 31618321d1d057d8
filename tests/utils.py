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
