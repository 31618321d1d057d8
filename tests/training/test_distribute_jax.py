"""Data parallelism on JAX (keras.distribution), with the CPU split into two devices."""

import os

import keras
import numpy as np
import pytest

from tests.utils import run_python

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="keras.distribution data parallelism runs on JAX")


def test_two_devices_give_the_weights_of_one_with_reshuffled_epochs(tmp_path):
    # kcnn.train reshuffles and re-augments every epoch, each epoch's order drawn
    # from (seed, epoch): the same on one device and on two.
    out = os.fspath(tmp_path / "result.npz")
    run_python(f"""
import kcnn, keras, numpy as np, jax
assert len(jax.devices()) == 2
(x, y), _ = kcnn.data.load_digits()
def run(strategy):
    return kcnn.train("lenet5", (x[:256], y[:256]), epochs=3, batch_size=64,
                      recipe="alexnet2012", strategy=strategy, validation_split=0.0,
                      verbose=0).model
one = run(None)
two = run("data_parallel")
kernel = two.get_layer("conv1").kernel.value
np.savez({out!r}, diff=max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                           for a, b in zip(one.get_weights(), two.get_weights())),
         devices=len(kernel.sharding.device_set),
         mesh=keras.distribution.distribution().device_mesh.shape[0],
         moved=float(np.abs(one.get_weights()[0] - kcnn.lenet5().get_weights()[0]).max()))
""", backend="jax", env={"JAX_NUM_CPU_DEVICES": "2"})
    result = np.load(out)
    assert int(result["devices"]) == 2  # the weights live on both devices
    assert int(result["mesh"]) == 2  # and each batch is split over both
    assert float(result["diff"]) < 1e-5
    assert float(result["moved"]) > 1e-3  # it trained
