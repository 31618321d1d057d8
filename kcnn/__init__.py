"""kcnn: classic convolutional networks as Keras 3 functional builders.

    import kcnn
    model = kcnn.alexnet()

Works on the TensorFlow, JAX and PyTorch backends.
"""

# Import order matters. triton (pulled in by the CUDA build of torch) crashes
# the process when it is loaded after TensorFlow (their LLVM copies clash), and
# under the torch backend `import keras` loads triton, while under the
# TensorFlow backend it loads TensorFlow. So triton, when installed, is loaded
# first, then keras, and only then anything that may import TensorFlow.
import importlib.util
import sys

# Once TensorFlow is loaded (say the user imported keras first on the TensorFlow
# backend), loading triton would crash instead: then it is left to torch.
if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401

import keras  # noqa: E402,F401

from kcnn import (data, inspect, layers, losses, models, schedules, training, transfer,
                  tuning, weights)
from kcnn.models import *  # noqa: F401,F403  (the builders)
from kcnn.exporting import export
from kcnn.inspect import feature_maps, gradcam, profile
from kcnn.registry import create_model, list_models
from kcnn.training import evaluate, predict, train
from kcnn.transfer import ensemble, fine_tune, tta
from kcnn.tuning import tune
from kcnn.weights import decode_predictions, preprocess_input

__version__ = "0.1.0"
