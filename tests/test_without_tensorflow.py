"""kcnn works where TensorFlow is not installed, on the JAX and torch backends.

The GPU machines `benchmarks/gpu.sh` is written for have JAX and torch but no
TensorFlow (benchmarks/README.md): importing kcnn, building models, `fit` on
in-memory arrays and `predict_on_batch` must not import it. A child process
makes TensorFlow absent before it imports anything and trains LeNet-5 and
ResNet-18 (kcnn's batch norm, which uses TensorFlow's fused kernel on the
TensorFlow backend) for one step each, the way Python sees a
package that is not installed: `sys.modules["tensorflow"] = None` makes
`import tensorflow` (and its submodules) raise ModuleNotFoundError and
`importlib.util.find_spec("tensorflow")` return None, which is what
torch._dynamo probes at `import keras` on the torch backend. A finder that
raises instead breaks that probe, which a real absence does not.
"""

import os
import subprocess
import sys
import textwrap

import keras
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the TensorFlow backend is TensorFlow: nothing to run without it")

CHILD = textwrap.dedent("""
    import sys

    for name in ("tensorflow", "tf_keras"):
        sys.modules[name] = None

    import keras
    import kcnn
    import numpy as np

    rng = np.random.default_rng(0)
    for name, shape in (("lenet5", (32, 32, 1)), ("resnet18", (32, 32, 3))):
        model = kcnn.create_model(name, input_shape=shape, classes=3, weights=None)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        x = rng.standard_normal((8,) + shape).astype("float32")
        y = rng.integers(0, 3, size=8)
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        out = keras.ops.convert_to_numpy(model.predict_on_batch(x))
        assert out.shape == (8, 3), (name, out.shape)
        assert np.isfinite(history.history["loss"][-1]), name
        print(name, "ok")
    loaded = sorted(m for m, v in sys.modules.items()
                    if v is not None and m.split(".")[0] in ("tensorflow", "tf_keras"))
    assert not loaded, loaded
""")


def test_build_fit_and_predict_without_tensorflow_installed():
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["lenet5", "ok", "resnet18", "ok"]
