"""kcnn: classic convolutional networks as Keras 3 functional builders.

    import kcnn
    model = kcnn.alexnet()

Works on the TensorFlow, JAX and PyTorch backends. TensorFlow,
tensorflow-datasets and keras-tuner load with the first feature that needs
them (`kcnn.data`'s tf.data pipelines, `train`, `evaluate`, `export`, `tune`,
`fine_tune`): building a model, saving and loading it, its weights and `fit` on
arrays need none of them.
"""

# Import order matters. triton (pulled in by the CUDA build of torch) crashes
# the process when it is loaded after TensorFlow (their LLVM copies clash), and
# under the torch backend `import keras` loads triton, while under the
# TensorFlow backend it loads TensorFlow. So triton, when installed, is loaded
# first, then keras, and only then anything that may import TensorFlow.
import importlib as _importlib
import importlib.util as _importlib_util
import sys as _sys

# Once TensorFlow is loaded (say the user imported keras first on the TensorFlow
# backend), loading triton would crash instead: then it is left to torch.
if "tensorflow" not in _sys.modules and _importlib_util.find_spec("triton") is not None:
    _importlib.import_module("triton")

import keras as _keras  # noqa: E402,F401

# Every module imported here is free of TensorFlow. Importing them registers
# kcnn's layers, models, schedules and optimizers, so that a `.keras` file
# that uses them loads after a bare `import kcnn`.
from kcnn import (_lazy, layers, losses, models, optimizers, registry,  # noqa: E402,F401
                  schedules, transfer, weights)
from kcnn.models import *  # noqa: E402,F401,F403  (the builders)
from kcnn.folding import fold_batch_norm  # noqa: E402
from kcnn.loading import load_model  # noqa: E402
from kcnn.registry import create_model, list_models  # noqa: E402
from kcnn.transfer import ensemble, tta  # noqa: E402
from kcnn.weights import decode_predictions, preprocess_input  # noqa: E402

__version__ = "0.1.0"

# What needs TensorFlow, tensorflow-datasets, keras-tuner or matplotlib loads
# on first use.
__getattr__, __dir__ = _lazy.attach(__name__, {
    "data": "kcnn.data",
    "exporting": "kcnn.exporting",
    "inspect": "kcnn.inspect",
    "training": "kcnn.training",
    "tuning": "kcnn.tuning",
    "evaluate": "kcnn.training:evaluate",
    "predict": "kcnn.training:predict",
    "train": "kcnn.training:train",
    "export": "kcnn.exporting:export",
    "fine_tune": "kcnn.transfer:fine_tune",
    "feature_maps": "kcnn.inspect:feature_maps",
    "gradcam": "kcnn.inspect:gradcam",
    "profile": "kcnn.inspect:profile",
    "tune": "kcnn.tuning:tune",
})

__all__ = [name for name in models.__all__ if name != "Model"] + [
    "create_model", "list_models",
    "train", "evaluate", "predict", "tune", "export", "load_model", "fold_batch_norm",
    "fine_tune", "ensemble", "tta",
    "profile", "feature_maps", "gradcam",
    "decode_predictions", "preprocess_input",
    "data", "exporting", "inspect", "layers", "losses", "models", "schedules",
    "training", "transfer", "tuning", "weights",
    "__version__",
]
