"""Shared test set-up. The suite runs once per backend, in separate processes:

    KERAS_BACKEND=jax python -m pytest tests

kcnn is imported first: it loads triton (if installed) and keras before
anything that may import TensorFlow; other orders crash the process when
torch and TensorFlow meet (see the README).
"""


import gc

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import keras
import numpy as np
import pytest
from hypothesis import settings

BACKEND = keras.backend.backend()

# Property tests draw the same cases on every run (CI never turns red on a
# newly drawn case), keep no example database (a derandomized run has nothing
# to replay) and are never failed for their speed on a loaded machine; 25 cases
# keep each test to a few seconds.
settings.register_profile("kcnn", deadline=None, derandomize=True, max_examples=25,
                          database=None)
settings.load_profile("kcnn")

# Objects that imports made are never garbage: a collection need not walk them.
gc.freeze()


@pytest.fixture(autouse=True, scope="module")
def _seeded_module():
    """Module fixtures (shared trained models) draw from a fixed seed too.

    They are set up before the per-test fixture below, so without this their
    weights would depend on whichever test the worker ran before them.
    """
    keras.utils.set_random_seed(0)
    yield
    # The module's shared models are garbage now: free their memory once per
    # module rather than once per test (see below).
    gc.collect()


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a cleared session, a fixed seed and channels_last.

    The session is cleared without `gc.collect()`: a full collection costs
    0.3-0.7 s once a worker holds compiled programs and models (measured on
    JAX: 520 s of the suite's set-up time), and Python's own collector and the
    module fixture's collection free the memory anyway.
    """
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    fmt = keras.config.image_data_format()
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_image_data_format(fmt)
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def channels_first():
    keras.config.set_image_data_format("channels_first")
    yield
    keras.config.set_image_data_format("channels_last")
