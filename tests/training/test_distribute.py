"""tf.distribute for real: the CPU split into two logical devices, in fresh processes.

MirroredStrategy and MultiWorkerMirroredStrategy are TensorFlow's (on JAX and
torch kcnn refuses them: tests/training/test_train.py), so these run on the
TensorFlow backend only; JAX's data parallelism is tests/training/test_distribute_jax.py.
"""

import json
import os
import socket

import keras
import numpy as np
import pytest

from tests.utils import run_python

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute's MirroredStrategy and MultiWorkerMirroredStrategy are TensorFlow's")

SPLIT_CPU = """
import kcnn, keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
(x, y), _ = kcnn.data.load_digits()
x, y = x[:256], y[:256]
"""


def test_two_replicas_give_the_weights_of_one_device_with_reshuffled_epochs(tmp_path):
    # kcnn.train reshuffles and re-augments every epoch. tf.data's own per-iterator
    # reshuffling depended on how many iterators Keras made, which differs under a
    # strategy (weights ~2e-3 apart); each epoch's order now comes from (seed, epoch).
    out = os.fspath(tmp_path / "result.npz")
    run_python(SPLIT_CPU + f"""
assert strategy.num_replicas_in_sync == 2
per_replica = next(iter(strategy.experimental_distribute_dataset(
    kcnn.data.train_pipeline(kcnn.data.load((x, y)), kcnn.lenet5().metadata["preprocessing"],
                             batch_size=64))))[0]
assert [int(v.shape[0]) for v in strategy.experimental_local_results(per_replica)] == [32, 32]
def run(strategy):
    return kcnn.train("lenet5", (x, y), epochs=3, batch_size=64, recipe="alexnet2012",
                      strategy=strategy, validation_split=0.0, verbose=0).model
one, two = run(None), run(strategy)
kernel = two.get_layer("conv1").kernel.value
np.savez({out!r}, diff=max(float(np.abs(a - b).max())
                           for a, b in zip(one.get_weights(), two.get_weights())),
         mirrored=len(strategy.experimental_local_results(kernel)),
         moved=float(np.abs(one.get_weights()[0] - kcnn.lenet5().get_weights()[0]).max()))
""", backend="tensorflow")
    result = np.load(out)
    assert int(result["mirrored"]) == 2  # one copy of each weight per replica
    assert float(result["diff"]) < 1e-5
    assert float(result["moved"]) > 1e-3  # it trained


def test_multi_worker_mirrored_strategy_is_refused_naming_jax_multihost():
    # Keras 3.15's fit fails under it (keras-team/keras#20585): kcnn refuses it
    # before loading data and names the multi-machine route that works.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}
    stdout = run_python("""
import kcnn, tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
try:
    kcnn.train("lenet5", "digits", epochs=1, strategy=strategy, verbose=0)
except ValueError as e:
    print("REFUSED:", e)
""", backend="tensorflow", env={"TF_CONFIG": json.dumps(config)})
    assert "REFUSED:" in stdout, stdout[-2000:]
    message = stdout.split("REFUSED:", 1)[1]
    assert "MultiWorkerMirroredStrategy" in message
    assert "kcnn multihost" in message and "kcnn.training.multihost" in message


def test_model_trained_mirrored_loads_on_torch(tmp_path):
    run_dir = os.fspath(tmp_path / "run")
    x_path = os.fspath(tmp_path / "x.npy")
    tf_out = os.fspath(tmp_path / "tf.npy")
    run_python(SPLIT_CPU + f"""
history = kcnn.train("simple_cnn", (x, y), epochs=1, batch_size=64, strategy=strategy,
                     out_dir={run_dir!r}, verbose=0)
model = keras.saving.load_model({run_dir!r} + "/model.keras")
config = str(model.get_config())
assert "'synchronized': True" not in config
# kcnn.predict on the mirrored model splits each batch over the replicas (an odd
# count of images, as a plain model gives them), not each replica the whole batch.
mirrored, plain = kcnn.predict(history.model, x[:7], top_k=3), kcnn.predict(model, x[:7], top_k=3)
assert len(mirrored) == 7
assert [[n for n, _ in r] for r in mirrored] == [[n for n, _ in r] for r in plain]
assert max(abs(p - q) for a, b in zip(mirrored, plain) for (_, p), (_, q) in zip(a, b)) < 1e-5
batch = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype("float32")
np.save({x_path!r}, batch)
np.save({tf_out!r}, model.predict(batch, verbose=0))
""", backend="tensorflow")
    torch_out = os.fspath(tmp_path / "torch.npy")
    run_python(f"""
import kcnn, keras, numpy as np
model = keras.saving.load_model({run_dir!r} + "/model.keras")
np.save({torch_out!r}, keras.ops.convert_to_numpy(model.predict(np.load({x_path!r}), verbose=0)))
""", backend="torch")
    np.testing.assert_allclose(np.load(torch_out), np.load(tf_out), atol=1e-5)
