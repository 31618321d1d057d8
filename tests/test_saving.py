"""`.keras` files move between backends."""

import os

import keras
import numpy as np
import pytest

import kcnn
from tests.utils import run_python


@pytest.mark.tf_only
def test_model_saved_under_torch_loads_under_tensorflow(tmp_path):
    path = os.fspath(tmp_path / "torch.keras")
    out = os.fspath(tmp_path / "torch_out.npy")
    run_python(
        "import kcnn, keras, numpy as np\n"
        "keras.utils.set_random_seed(0)\n"
        "model = kcnn.simple_cnn(classes=5)\n"
        "x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype('float32')\n"
        f"np.save({out!r}, np.asarray(model.predict(x, verbose=0)))\n"
        f"model.save({path!r})\n",
        backend="torch",
    )
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), np.load(out), atol=1e-5)
    assert loaded.metadata["class_names"] == ["0", "1", "2", "3", "4"]
