"""Multi-device training for real (the CPU split into two logical devices) and
crash safety (a real training process killed and started again).

Process-heavy: TensorFlow backend only; each scenario runs in fresh processes.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.utils import run_python

pytestmark = pytest.mark.tf_only

SPLIT_CPU = """
import kcnn, keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
(x, y), _ = kcnn.data.load_digits()
x, y = x[:256], y[:256]
"""


def test_two_replicas_give_the_weights_of_one_device(tmp_path):
    # A fixed-order pipeline: tf.data's per-iteration reshuffling depends on how
    # many iterators were made, and Keras makes a different number under a
    # strategy, so kcnn.train's reshuffled epochs are not compared here.
    out = os.fspath(tmp_path / "weights.npz")
    run_python(SPLIT_CPU + f"""
source = kcnn.data.load((x, y))
def run(strategy):
    keras.utils.set_random_seed(0)
    model = kcnn.lenet5()
    data = kcnn.data.train_pipeline(source, model.metadata["preprocessing"], batch_size=64,
                                    augment=None, shuffle_buffer=1, cache=True)
    placement = kcnn.training.distribute.resolve(strategy)
    with placement.scope():
        model = placement.adopt(model)
        model.compile(optimizer=kcnn.training.SGD(0.01, momentum=0.9, l2=5e-4),
                      loss="sparse_categorical_crossentropy")
    model.fit(data, epochs=2, verbose=0, shuffle=False)
    return [np.asarray(w) for w in model.get_weights()]
assert strategy.num_replicas_in_sync == 2
per_replica = next(iter(strategy.experimental_distribute_dataset(
    kcnn.data.train_pipeline(source, kcnn.lenet5().metadata["preprocessing"], batch_size=64,
                             augment=None, shuffle_buffer=1))))[0]
assert [int(v.shape[0]) for v in strategy.experimental_local_results(per_replica)] == [32, 32]
one, two = run(None), run(strategy)
np.savez({out!r}, diff=max(float(np.abs(a - b).max()) for a, b in zip(one, two)))
""", backend="tensorflow")
    assert float(np.load(out)["diff"]) < 1e-5


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


def _epochs_logged(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_a_killed_run_resumes_from_its_last_epoch(tmp_path):
    out = os.fspath(tmp_path / "run")
    log = os.path.join(out, "log.csv")
    code = (f"import kcnn\nkcnn.train('lenet5', 'digits', epochs=12, out_dir={out!r}, "
            f"verbose=0)\n")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    process = subprocess.Popen([sys.executable, "-c", code], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(_epochs_logged(log)) < 3 and time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _epochs_logged(log)
    assert 3 <= len(done_before) < 12
    assert not os.path.exists(os.path.join(out, "finished.json"))

    run_python(code, backend="tensorflow")
    epochs = _epochs_logged(log)
    resumed = epochs[len(done_before):]
    assert resumed[0] >= len(done_before) - 1, (done_before, resumed)
    assert resumed[-1] == 11
    assert os.path.exists(os.path.join(out, "finished.json"))
