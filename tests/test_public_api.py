"""The public face: `__all__`, what `import kcnn` loads, and kcnn without TensorFlow."""

import json

import keras
import pytest

import kcnn
from tests.utils import run_python

BACKEND = keras.backend.backend()
HEAVY = ("tensorflow", "tensorflow_datasets", "keras_tuner")

needs_tf_free_keras = pytest.mark.skipif(
    BACKEND == "tensorflow",
    reason="Keras on the TensorFlow backend imports TensorFlow itself",
)


def test_every_name_in_all_resolves():
    for name in kcnn.__all__:
        assert getattr(kcnn, name) is not None, name
    assert set(kcnn.__all__) <= set(dir(kcnn))


def test_dir_offers_no_imported_helpers():
    assert not {"sys", "importlib", "triton", "keras"} & set(dir(kcnn))


def test_lazy_names_are_the_real_objects():
    from kcnn import train

    assert train is kcnn.training.train
    assert kcnn.tune is kcnn.tuning.tune
    assert kcnn.fine_tune is kcnn.transfer.fine_tune
    assert kcnn.export is kcnn.exporting.export
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        kcnn.no_such_name  # noqa: B018


def test_import_loads_only_what_it_needs_and_registers_every_custom_object():
    # What the lazily loaded features register, a bare import must register
    # too, or a `.keras` file that uses it would not load after `import kcnn`.
    out = run_python(
        "import json, sys, keras\n"
        "import kcnn\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "def kcnn_objects():\n"
        "    return sorted(n for n in keras.saving.get_custom_objects() if n.startswith('kcnn>'))\n"
        "bare = kcnn_objects()\n"
        "for name in ('data', 'exporting', 'inspect', 'training', 'transfer', 'tuning'):\n"
        "    getattr(kcnn, name)\n"
        "print(json.dumps([heavy, bare, kcnn_objects()]))\n",
        backend=BACKEND)
    heavy, bare, everything = json.loads(out.splitlines()[-1])
    if BACKEND != "tensorflow":  # there Keras imports TensorFlow itself
        assert heavy == []
    assert bare == everything
    assert {"kcnn>SGD", "kcnn>LocalResponseNormalization", "kcnn>Model",
            "kcnn>ViewMean"} <= set(bare)


# Hides TensorFlow (and tfds, keras-tuner) from every finder before anything
# is imported, as if they were not installed: `import tensorflow` raises
# ModuleNotFoundError and `importlib.util.find_spec` says None (torch probes).
_BLOCK_HEAVY = f"""
import sys

class _Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {HEAVY!r}:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, name):
        return getattr(self.finder, name)

sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
"""

_WITHOUT_TENSORFLOW = _BLOCK_HEAVY + """
import os
import tempfile

import keras
import numpy as np

import kcnn

try:
    import tensorflow  # noqa: F401
except ImportError:
    pass
else:
    raise AssertionError("tensorflow imported despite the block")

rng = np.random.default_rng(0)
folder = tempfile.mkdtemp()
cases = [
    ("lenet5", {}),
    ("resnet18", {"input_shape": (32, 32, 3), "classes": 3}),
    ("alexnet", {"variant": "paper", "include_top": False, "pooling": "avg",
                 "input_shape": (67, 67, 3)}),
]
for name, kwargs in cases:
    keras.utils.set_random_seed(0)
    model = kcnn.create_model(name, **kwargs)
    x = rng.normal(size=(4, *model.input_shape[1:])).astype("float32")
    y = rng.normal(size=(4, *model.output_shape[1:])).astype("float32")
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    expected = model.predict(x, verbose=0)

    path = os.path.join(folder, name + ".keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert loaded.metadata == model.metadata

    weights = os.path.join(folder, name + ".weights.h5")
    model.save_weights(weights)
    rebuilt = getattr(kcnn, name)(weights=weights, **kwargs)
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)

print(sorted(m for m in ("tensorflow", "tensorflow_datasets", "keras_tuner") if m in sys.modules))
"""


@needs_tf_free_keras
def test_builders_saving_and_fit_work_without_tensorflow():
    out = run_python(_WITHOUT_TENSORFLOW, backend=BACKEND)
    assert out.splitlines()[-1] == "[]"
