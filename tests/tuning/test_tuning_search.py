"""kcnn.tuning's searches on every backend: Bayesian and Hyperband searches, the
lenet5-digits job, a chief and two workers; and trials under MirroredStrategy on
a CPU split in two (TensorFlow)."""

import argparse
import csv
import os
import re
import runpy
import subprocess
import sys

import keras
import keras_tuner as kt
import pytest

from kcnn import tuning
from kcnn.cli import tune as tune_command
from tests.utils import run_python

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEARCH = dict(epochs=1, batch_size=142, seed=0, verbose=0, retrain=False)


def _rows(directory):
    with open(os.path.join(directory, "trials.csv")) as f:
        return list(csv.DictReader(f))


def test_a_bayesian_search_runs_two_trials(tmp_path):
    result = tuning.tune("lenet5", "digits", directory=tmp_path, tuner="bayesian",
                         max_trials=2, **SEARCH)
    assert result.trials_run == 2
    assert isinstance(result.tuner.oracle, kt.oracles.BayesianOptimizationOracle)
    assert [r["status"] for r in _rows(tmp_path)] == ["COMPLETED", "COMPLETED"]


def test_hyperband_completes_and_the_same_command_adds_no_trial(tmp_path, capsys):
    result = tuning.tune("lenet5", "digits", directory=tmp_path, tuner="hyperband",
                         max_epochs=2, factor=2, batch_size=142, seed=0, verbose=0,
                         retrain=False)
    rows = _rows(tmp_path)
    # max_epochs 2, factor 2: a bracket of two 1-epoch trials and the best one
    # continued for a second epoch, then a bracket of two 2-epoch trials.
    assert result.trials_run == len(rows) == 5
    assert all(r["status"] == "COMPLETED" for r in rows)
    first_round = {r["trial_id"] for r in rows if r["tuner/epochs"] == "1"}
    continued = [r for r in rows if r["tuner/initial_epoch"] == "1"]
    assert len(first_round) == 2 and len(continued) == 1
    assert continued[0]["tuner/trial_id"] in first_round

    parser = argparse.ArgumentParser()
    tune_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tune", "--model", "lenet5", "--data", "digits", "--tuner",
                              "hyperband", "--max-epochs", "2", "--factor", "2",
                              "--batch-size", "142", "--no-retrain",
                              "--directory", str(tmp_path)])
    capsys.readouterr()
    assert args.run(args) == 0
    assert "best of 5 trials (0 run now)" in capsys.readouterr().out
    assert len(_rows(tmp_path)) == 5


def test_the_lenet5_digits_job_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [
        "lenet5-digits.py", "--max-trials", "1", "--epochs", "1", "--batch-size", "142",
        "--directory", str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(os.path.join(ROOT, "tuning", "lenet5-digits.py"), run_name="__main__")
    assert done.value.code == 0
    assert "best of 1 trials (1 run now)" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "best_model.keras")


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="MirroredStrategy exists only in TensorFlow (JAX's data "
                           "parallel trials are in test_tuning.py)")
def test_every_trial_runs_under_mirrored_strategy_on_two_cpus(tmp_path):
    directory = os.fspath(tmp_path / "mirrored")
    out = run_python(f"""
import functools
import kcnn, keras, tensorflow as tf
from kcnn import registry, tuning
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

built, trained = [], []
real = registry.get_builder
def get_builder(name):
    builder = real(name)
    @functools.wraps(builder)
    def recording(**kwargs):
        model = builder(**kwargs)
        built.append((tf.distribute.get_strategy().num_replicas_in_sync,
                      isinstance(model.weights[0].value, tf.distribute.DistributedValues)))
        return model
    return recording
registry.get_builder = get_builder

class Replicas(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        trained.append(isinstance(self.model.weights[0].value,
                                  tf.distribute.DistributedValues))

result = tuning.tune("lenet5", "digits", directory={directory!r}, strategy=strategy,
                     max_trials=2, epochs=1, batch_size=142, verbose=0,
                     callbacks=[Replicas()])
print("built", built[2:])
print("trained", trained)
print("trials", result.trials_run, result.best_score is not None)
model = keras.saving.load_model(result.model_path)
print("loaded", model.name)
""", backend="tensorflow")
    # Two trials and the retraining, each built and trained on two replicas.
    assert "built [(2, True), (2, True), (2, True)]" in out
    assert "trained [True, True]" in out
    assert "trials 2 True" in out and "loaded lenet5" in out


@pytest.mark.skipif(
    BACKEND != "torch",
    reason="keras-tuner's chief and workers (the oracle over gRPC, the shared directory) "
           "do not depend on the backend, and three processes cost about a minute: run "
           "once, on torch; every backend's trials run in the searches above")
def test_a_chief_and_two_workers_finish_a_four_trial_search(tmp_path):
    directory = tmp_path / "distributed"
    # Three processes share the machine's cores: one torch thread each, or the
    # threads of one process spin while another's run (steps 7-10x slower here).
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tuning", "distributed.py"), "--workers", "2",
         "--", "--model", "lenet5", "--data", "digits", "--max-trials", "4", "--epochs", "1",
         "--batch-size", "142", "--directory", str(directory)],
        env=env, text=True, capture_output=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    ran = {worker: int(n) for worker, n in
           re.findall(r"\[(tuner\d)\] worker tuner\d ran (\d+) trials", result.stdout)}
    assert set(ran) == {"tuner0", "tuner1"} and sum(ran.values()) == 4, result.stdout[-4000:]
    assert "[chief] best of 4 trials (0 run now)" in result.stdout
    rows = _rows(directory)
    assert len(rows) == 4 and all(r["status"] == "COMPLETED" for r in rows)
    assert os.path.exists(directory / "best_model.keras")
