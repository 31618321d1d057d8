# %% [markdown]
# # 6. Multi-device training and export
#
# Data parallelism copies the model onto every device, gives each a slice of the
# batch, and averages the gradients before one shared update. Keras does it on two
# of its backends: on TensorFlow `kcnn.train(..., strategy="mirrored")` uses
# `tf.distribute.MirroredStrategy`, on JAX `strategy="data_parallel"` uses
# `keras.distribution.DataParallel` (which also spans several machines). The torch
# backend has no multi-device training in Keras 3.15: neither `tf.distribute` nor
# `keras.distribution` works with it, so there the model trains on one device. This
# machine has no GPU, so the CPU is split into two *logical* devices: the same code
# path, run for real.
#
# Then the trained model leaves Python: `kcnn.export` writes a TensorFlow SavedModel
# that takes raw uint8 images and does the model's own preprocessing inside, and a
# fresh process that never imports kcnn (or Keras) serves it. That works from every
# backend.
#
# Runs on any Keras backend (`KERAS_BACKEND`); the committed outputs are TensorFlow's.
# `KCNN_NOTEBOOK_SMALL=1` trains for one epoch on a third of the digits instead of five
# on all of them.

# %%
import os

# Two CPU devices for JAX: read when jax is first imported (by keras, below), so this
# must come first, in a fresh kernel. TensorFlow is split further down.
os.environ["JAX_NUM_CPU_DEVICES"] = "2"

import kcnn  # noqa: E402  (first: it orders the imports of keras, TensorFlow and torch)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402  (for the SavedModel on every backend)

tf.get_logger().setLevel("ERROR")  # tf.distribute's INFO lines
BACKEND = keras.backend.backend()
SMALL = os.environ.get("KCNN_NOTEBOOK_SMALL") == "1"
print(f"backend: {BACKEND}, {'small' if SMALL else 'full'} run")

if BACKEND == "tensorflow":
    # Two logical CPUs; this must happen before TensorFlow starts using its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    print(tf.config.list_logical_devices("CPU"))
elif BACKEND == "jax":
    print("JAX devices:", keras.distribution.list_devices())

# %% [markdown]
# ## Training on two devices
#
# On TensorFlow the strategy sees both logical CPUs: `kcnn.train` builds the model
# inside the strategy's scope, so its variables become `MirroredVariable`s, one copy
# per device. On JAX `strategy="data_parallel"` sets a `DataParallel` distribution over
# all devices: every variable is one `jax.Array` replicated on both, and each batch is
# sharded along its first axis. Either way `batch_size` is the *global* batch: each
# replica gets half of it, and the gradients are averaged over both halves.

# %%
if BACKEND == "tensorflow":
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print("replicas in sync:", strategy.num_replicas_in_sync)
elif BACKEND == "jax":
    strategy = "data_parallel"
else:
    strategy = None
    print("the torch backend has no multi-device training in Keras 3.15 "
          "(no tf.distribute, no keras.distribution): training on one device")

(x_train, y_train), (x_test, y_test) = kcnn.data.load_digits()
if SMALL:
    x_train, y_train = x_train[:512], y_train[:512]
history = kcnn.train("lenet5", (x_train, y_train), epochs=1 if SMALL else 5, batch_size=64,
                     strategy=strategy, verbose=2)
model = history.model
weight = model.weights[0].value
if BACKEND == "tensorflow":
    print(f"a weight is held as: {type(weight).__name__}, one copy on each of "
          f"{len(weight.values)} devices")
elif BACKEND == "jax":
    print(f"distribution: {keras.distribution.distribution()}")
    print(f"a weight is held as: {type(weight).__name__} replicated on "
          f"{len(weight.sharding.device_set)} devices ({weight.sharding.spec})")
else:
    print(f"a weight is held as: {type(weight).__name__} on {weight.device}")

# %%
result = kcnn.evaluate(model, (x_test, y_test))
print(f"test top-1 {result['top1']:.3f}, loss {result['loss']:.3f}")

# %% [markdown]
# ## Export a SavedModel
#
# The SavedModel has four signatures: `serving_default` takes a batch of raw uint8
# images of any size with 1 or 3 channels, `serving_encoded` takes JPEG/PNG file
# bytes, `serving_preprocessed` takes the model's own float input, and `serve` is
# Keras's plain endpoint. The first three return probabilities and the top-k class
# indices and names. The preprocessing the model was trained with (the digits'
# mean and standard deviation, computed by `kcnn.train`) is inside, read from the
# model's metadata. TensorFlow writes it directly, JAX through `jax2tf`; from torch,
# `kcnn.export` saves the model as a `.keras` file and a TensorFlow process writes it.

# %%
import tempfile  # noqa: E402

print(model.metadata["preprocessing"])
workdir = tempfile.mkdtemp(prefix="kcnn-notebook-")
served = os.path.join(workdir, "lenet5_digits")
kcnn.export(model, served)

loaded = tf.saved_model.load(served)
for name, function in loaded.signatures.items():
    inputs = function.structured_input_signature[1]
    outputs = function.structured_outputs
    print(f"{name}: inputs {list(inputs)} -> outputs {sorted(outputs)}")

# %% [markdown]
# ## Serve it from a fresh process
#
# A new Python process with TensorFlow only, as a server would run it, loads the
# SavedModel and classifies raw test digits: uint8, 28x28x1, exactly as stored. Its
# answers are compared with `kcnn.predict` on the same images in this process.

# %%
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

images = x_test[:8]
np.save(os.path.join(workdir, "images.npy"), images)
server = f"""
import json, sys
import numpy as np
import tensorflow as tf
assert "kcnn" not in sys.modules
serve = tf.saved_model.load({served!r}).signatures["serving_default"]
out = serve(images=tf.constant(np.load({os.path.join(workdir, "images.npy")!r})))
print(json.dumps({{"names": out["top_k_names"][:, 0].numpy().astype(str).tolist(),
                   "p": out["top_k_probabilities"][:, 0].numpy().tolist()}}))
"""
# The server's `import tensorflow` imports keras: give it the TensorFlow backend.
env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
run = subprocess.run([sys.executable, "-c", server], capture_output=True, text=True, env=env)
assert run.returncode == 0, run.stderr[-2000:]
answer = json.loads(run.stdout.strip().splitlines()[-1])

in_process = kcnn.predict(model, images, top_k=1)
print(f"{'true':>5} {'served':>7} {'p':>6} {'kcnn.predict':>13} {'p':>6}")
for label, name, p, ((name2, p2),) in zip(y_test[:8], answer["names"], answer["p"],
                                           in_process):
    print(f"{label:5d} {name:>7} {p:6.3f} {name2:>13} {p2:6.3f}")
assert answer["names"] == [r[0][0] for r in in_process]
print("the served model gives kcnn.predict's answers")
