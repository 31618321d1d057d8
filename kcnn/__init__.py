"""kcnn: classic convolutional networks as Keras 3 functional builders.

    import kcnn
    model = kcnn.alexnet()

Works on the TensorFlow, JAX and PyTorch backends.
"""

# Keras must be imported before anything that imports TensorFlow: under the
# torch backend, TensorFlow loaded first makes triton (loaded by keras through
# torch) crash the process. See the README.
import keras  # noqa: F401  (import order matters)

from kcnn import layers, models
from kcnn.models import *  # noqa: F401,F403  (the builders)
from kcnn.registry import create_model, list_models

__version__ = "0.1.0"
