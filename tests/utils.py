"""Helpers the tests share (fixtures live in conftest.py)."""

import os
import subprocess
import sys

import numpy as np


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
