"""`.keras` files move between backends: one saved on this backend loads on the
other two, each in a process of its own, and gives the same outputs."""

import json

import keras
import numpy as np
import pytest

import kcnn
from tests.utils import run_python

BACKEND = keras.backend.backend()
OTHERS = [b for b in ("tensorflow", "jax", "torch") if b != BACKEND]

# Run on another backend: load the file (compiled, as Keras loads it by
# default), call the model, report the metadata record and the optimizer. The
# model is called rather than `predict`ed: the file keeps the `jit_compile` its
# backend resolved "auto" to, True on JAX, and on torch that means torch.compile
# (half a minute for this model).
LOAD = """
import json
import kcnn, keras, numpy as np
model = keras.saving.load_model({path!r})
y = model(keras.ops.convert_to_tensor(np.load({x!r})), training=False)
np.save({out!r}, keras.ops.convert_to_numpy(y))
print(json.dumps([model.metadata, type(model.optimizer).__name__,
                  float(model.optimizer.learning_rate)]))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small BatchNorm CNN trained two steps here (moved weights and moving
    statistics), saved as `.keras`; with test inputs and its outputs."""
    keras.utils.set_random_seed(0)
    # 32x32 pools through kcnn's own AdaptiveAveragePooling2D layer.
    model = kcnn.simple_cnn(input_shape=(32, 32, 1), classes=5, classifier_activation=None)
    model.metadata = {**model.metadata, "class_names": ["a", "b", "c", "d", "e"]}
    rng = np.random.default_rng(0)
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(rng.normal(size=(16, 32, 32, 1)).astype("float32"), rng.integers(0, 5, 16),
              batch_size=8, verbose=0)
    assert np.any(model.get_layer("bn1").moving_mean.numpy() != 0)
    work = tmp_path_factory.mktemp("saving")
    x = rng.normal(size=(4, 32, 32, 1)).astype("float32")
    np.save(work / "x.npy", x)
    model.save(work / "model.keras")
    return work, model, keras.ops.convert_to_numpy(model.predict(x, verbose=0))


@pytest.mark.parametrize("backend", OTHERS)
def test_a_model_saved_on_this_backend_loads_on_another(backend, saved):
    work, model, expected = saved
    out = work / f"{backend}.npy"
    report = run_python(LOAD.format(path=str(work / "model.keras"), out=str(out),
                                      x=str(work / "x.npy")), backend=backend)
    np.testing.assert_allclose(np.load(out), expected, rtol=0,
                               atol=1e-5 * np.max(np.abs(expected)))
    loaded = json.loads(report.strip().splitlines()[-1])
    assert loaded == [model.metadata, "SGD", pytest.approx(0.05)]
