"""Crash safety: a training process killed with SIGKILL and started again, on every backend.

The run is `kcnn.train` as a user calls it, reshuffled and augmented each
epoch, in child processes on the backend of this test process. A callback in
the child logs every batch's running loss and accuracy (which batch of which
examples at which weights: a different data order or a lost optimizer state
changes them) and each epoch's starting step and learning rate, and at one
batch mid-run it signals the test, which kills the process with SIGKILL.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np


EPOCHS = 4
KILL_AT = (2, 2)  # (epoch, batch): two epochs done, three steps of the third lost

TRAIN = """
import json, sys, time
import kcnn, keras, numpy as np

out, trace, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
kill_at = tuple(json.loads(sys.argv[4]) or ())
# Three classes of 28x28 grayscale noise around three grey levels: learnable, and
# made here in a blink (no scikit-learn import, no resizing).
rng = np.random.default_rng(0)
y = np.arange(120) % 3
x = rng.normal(np.array([40, 128, 215])[y, None, None, None], 30, (120, 28, 28, 1))
x = x.clip(0, 255).astype("uint8")

class Trace(keras.callbacks.Callback):
    def log(self, **row):
        with open(trace, "a") as f:
            f.write(json.dumps(row) + "\\n")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        optimizer = self.model.optimizer
        self.log(epoch=epoch, step=int(keras.ops.convert_to_numpy(optimizer.iterations)),
                 learning_rate=float(keras.ops.convert_to_numpy(optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):
        self.log(epoch=self.epoch, batch=batch, loss=float(logs["loss"]),
                 top1=float(logs["top1"]))
        if (self.epoch, batch) == kill_at:
            self.log(killed=True)
            time.sleep(600)  # the test kills the process now

kcnn.train("lenet5", (x, y), epochs=epochs, batch_size=16, out_dir=out,
           callbacks=[Trace()], verbose=0)
"""


def _start(out, trace, kill_at=None):
    """The training process on this test's backend; its stderr goes to `trace`.err."""
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    with open(trace + ".err", "a") as err:
        return subprocess.Popen([sys.executable, "-c", TRAIN, out, trace, str(EPOCHS),
                                 json.dumps(kill_at)],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)


def _errors(trace):
    with open(trace + ".err") as f:
        return f.read()[-4000:]


def _finish(process, trace):
    process.wait(timeout=600)
    assert process.returncode == 0, _errors(trace)


def _read(trace):
    with open(trace) as f:
        return [json.loads(line) for line in f]


def _reached_kill(trace):
    if not os.path.exists(trace):
        return False
    with open(trace) as f:
        return '{"killed": true}' in f.read()


def _files(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


def _log_rows(out):
    with open(os.path.join(out, "log.csv")) as f:
        return list(csv.DictReader(f))


def _history(out):
    with open(os.path.join(out, "history.json")) as f:
        return json.load(f)


def test_a_killed_run_resumes_where_it_stopped_and_ends_as_if_never_killed(tmp_path):
    killed_out, never_out = os.fspath(tmp_path / "killed"), os.fspath(tmp_path / "never")
    killed_trace, never_trace = (os.fspath(tmp_path / "killed.jsonl"),
                                 os.fspath(tmp_path / "never.jsonl"))
    never = _start(never_out, never_trace)  # the run that is never killed, alongside
    process = _start(killed_out, killed_trace, KILL_AT)
    deadline = time.monotonic() + 600
    while not _reached_kill(killed_trace):
        assert process.poll() is None, _errors(killed_trace)
        assert time.monotonic() < deadline, "the run never reached the batch to kill it at"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    before = _files(killed_out)
    rows_before = _log_rows(killed_out)
    assert [int(row["epoch"]) for row in rows_before] == [0, 1]
    assert "backup/latest.weights.h5" in before
    assert "finished.json" not in before

    _finish(_start(killed_out, killed_trace), killed_trace)
    _finish(never, never_trace)

    trace = [row for row in _read(killed_trace) if "killed" not in row]
    done = [i for i, row in enumerate(trace) if row.get("epoch") == KILL_AT[0]
            and "step" in row]
    first_run, resumed = trace[:done[0]], trace[done[-1]:]
    expected = _read(never_trace)
    # Resumed at the epoch after the last completed one, at its first step.
    assert resumed[0]["epoch"] == KILL_AT[0]
    assert resumed[0]["step"] == expected[done[0]]["step"]
    # The same batches at the same weights and learning rates as the run never
    # killed: before the kill (the same start) and after the restart.
    for got, want in zip(first_run + resumed, expected, strict=True):
        assert got.keys() == want.keys()
        for key in got:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)

    # Nothing written before the kill is lost; the backup goes once the run ends.
    after = _files(killed_out)
    assert set(before) - set(after) <= {"backup/latest.weights.h5",
                                        "backup/training_metadata.json"}
    assert not any(name.startswith("backup/") for name in after)
    assert "finished.json" in after
    rows_after = _log_rows(killed_out)
    assert rows_after[:2] == rows_before
    assert [int(row["epoch"]) for row in rows_after] == list(range(EPOCHS))
    # The run's summary covers the whole run, not only the epochs after the restart.
    killed_history, never_history = (_history(killed_out), _history(never_out))
    assert killed_history["epochs"] == never_history["epochs"] == EPOCHS
    assert killed_history["history"].keys() == never_history["history"].keys()
    for key, values in never_history["history"].items():
        np.testing.assert_allclose(killed_history["history"][key], values, rtol=1e-5,
                                   err_msg=key)

    killed_model = keras.saving.load_model(os.path.join(killed_out, "model.keras"))
    never_model = keras.saving.load_model(os.path.join(never_out, "model.keras"))
    diff = max(float(np.abs(a - b).max())
               for a, b in zip(killed_model.get_weights(), never_model.get_weights()))
    assert diff < 1e-5


def _checkpoint_after_one_epoch(out_dir):
    """Fit a tiny model one epoch with the `best.keras` checkpoint `kcnn.train` makes."""
    from kcnn.training.recipes import get_recipe
    from kcnn.training.train import _callbacks

    checkpoint, = [c for c in _callbacks(get_recipe("default"), "loss", out_dir)
                   if isinstance(c, keras.callbacks.ModelCheckpoint)]
    # Zero weights: the one epoch's loss is log(2) = 0.693 on every backend.
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(2, "softmax", kernel_initializer="zeros")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.ones((8, 4), "float32")
    model.fit(x, np.zeros(8, "int32"), epochs=1, verbose=0, callbacks=[checkpoint])
    return os.path.exists(os.path.join(out_dir, "best.keras"))


def test_a_resumed_run_keeps_the_best_checkpoint_of_the_epochs_before_the_restart(tmp_path):
    out_dir = os.fspath(tmp_path)
    with open(os.path.join(out_dir, "log.csv"), "w") as f:
        # An older run that overwrite=True replaced, then the interrupted run's epochs.
        f.write("epoch,loss\n0,0.0000001\n0,3.0\n1,0.001\n")
    os.mkdir(os.path.join(out_dir, "backup"))  # BackupAndRestore's: the run resumes
    # The epoch after the restart (log(2), far above 0.001) is no new best.
    assert not _checkpoint_after_one_epoch(out_dir)
    with open(os.path.join(out_dir, "log.csv"), "a") as f:  # a later run, interrupted worse
        f.write("0,50.0\n1,40.0\n")
    # Better than that run's best (the older 0.0000001 belongs to a replaced run).
    assert _checkpoint_after_one_epoch(out_dir)
    os.remove(os.path.join(out_dir, "best.keras"))
    os.rmdir(os.path.join(out_dir, "backup"))  # a fresh run: its first epoch is the best so far
    assert _checkpoint_after_one_epoch(out_dir)
