"""Models the inspection tests share, built once per session."""

import functools

import pytest

import kcnn
from kcnn.inspect import without_weights


@functools.lru_cache(maxsize=None)
def symbolic(name):
    """A registered builder's model at its reference size, built without weights.

    Only its graph and shapes are used (profiles, default layers): never called.
    """
    with without_weights():
        return kcnn.create_model(name)


@pytest.fixture(scope="session")
def lenet():
    """A real LeNet-5 (61,706 weights): cheap to allocate, even on JAX."""
    return kcnn.lenet5()
