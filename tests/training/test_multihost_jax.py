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


# One process of the job: `kcnn multihost` as a user runs it, with a tap on what
# Keras feeds this process. Keras hands each dataset (training, then validation)
# to the distribution's `distribute_dataset`, which gives every process its
# share; the tap fingerprints each example of that share and records each
# batch's size, per dataset.
WORKER = """
import hashlib, json, sys
import kcnn, keras, numpy as np, tensorflow as tf
from kcnn.cli.multihost import main

read = []  # per dataset handed over: {"fingerprints": [...], "sizes": [...]}
distribute = keras.distribution.DataParallel.distribute_dataset

def tapped(self, dataset):
    record = {"fingerprints": [], "sizes": []}
    read.append(record)
    def log(images):
        images = images.numpy()
        record["sizes"].append(len(images))
        record["fingerprints"].extend(hashlib.sha1(x.tobytes()).hexdigest() for x in images)
        return len(images)
    def tap(images, *rest):
        with tf.control_dependencies([tf.py_function(log, [images], tf.int64)]):
            return (tf.identity(images), *rest)
    return distribute(self, dataset).map(tap)

keras.distribution.DataParallel.distribute_dataset = tapped
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(read, f)
sys.exit(code)
"""


def test_two_processes_train_one_model_each_on_its_half_of_the_data(tmp_path):
    port = free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    args = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
            "--model", "lenet5", "--data", "digits", "--epochs", "2",
            "--batch-size", "64", "--out", str(tmp_path / "run")]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"read{i}.json"),
                                 *args, "--process-id", str(i)],
                                env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
               for i in range(2)]
    results, reads = [], []
    for i, worker in enumerate(workers):
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
        with open(tmp_path / f"read{i}.json") as f:
            reads.append(json.load(f))

    first, second = results
    # Two processes that never joined would each train alone, on the same data with
    # the same seed, and agree on everything below: this is what tells them apart.
    assert first["process_count"] == second["process_count"] == 2
    assert first["devices"] == second["devices"] >= 2
    assert {first["process_id"], second["process_id"]} == {0, 1}
    # Each process was fed half of every global batch of 64, and not the same
    # half: processes that never joined would each read whole batches, the same.
    (train0, val0), (train1, val1) = reads
    for read in (train0, val0, train1, val1):
        assert read["sizes"] and set(read["sizes"]) == {32}, read["sizes"]
    # Validation (no augmentation, the same examples each epoch): disjoint halves.
    assert len(val0["fingerprints"]) == len(val1["fingerprints"])
    assert not set(val0["fingerprints"]) & set(val1["fingerprints"])
    # Training: each epoch is split in two; an example can recur on the other
    # process in the other epoch with the same random shift (about 2% here).
    assert len(train0["fingerprints"]) == len(train1["fingerprints"])
    common = set(train0["fingerprints"]) & set(train1["fingerprints"])
    assert len(common) < 0.1 * len(train0["fingerprints"]), len(common)
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
