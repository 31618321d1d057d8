"""Multi-host JAX training for real: two processes on 127.0.0.1 train together."""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="multi-host data parallelism is JAX's")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_model(tmp_path):
    port = free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "kcnn.training.multihost",
               "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
               "--model", "lenet5", "--data", "digits", "--epochs", "2",
               "--batch-size", "64", "--out", str(tmp_path / "run")]
    workers = [subprocess.Popen(command + ["--process-id", str(i)], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for i in range(2)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    first, second = results
    # Two processes that never joined would each train alone, on the same data with
    # the same seed, and agree on everything below: this is what tells them apart.
    assert first["process_count"] == second["process_count"] == 2
    assert first["devices"] == second["devices"] >= 2
    assert {first["process_id"], second["process_id"]} == {0, 1}
    assert first["epochs"] == second["epochs"] == 2
    # One model: the gradients were averaged over both processes.
    assert first["weights_checksum"] == pytest.approx(second["weights_checksum"], rel=1e-6)
    assert first["val_loss"] == pytest.approx(second["val_loss"], rel=1e-5)
    assert first["val_top1"] > 0.5  # it learned
    assert os.path.isfile(tmp_path / "run" / "model.keras")  # process 0 wrote it


def test_initialize_names_bad_arguments():
    from kcnn.training import multihost

    with pytest.raises(ValueError, match="process_id must be"):
        multihost.initialize("127.0.0.1:1", num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="coordinator must be"):
        multihost.initialize("localhost", num_processes=2, process_id=0)
