# %% [markdown]
# # 6. Multi-device training and export
#
# Data parallelism copies the model onto every device, gives each a slice of the
# batch, and averages the gradients before one shared update. On the TensorFlow
# backend `kcnn.train(..., strategy="mirrored")` does this with
# `tf.distribute.MirroredStrategy` across all GPUs. This machine has none, so the
# CPU is split into two *logical* devices: the same code path, run for real.
#
# Then the trained model leaves Python: `kcnn.export` writes a TensorFlow SavedModel
# that takes raw uint8 images and does the model's own preprocessing inside, and a
# fresh process that never imports kcnn (or Keras) serves it.
#
# This notebook sets the TensorFlow backend itself. `KCNN_NOTEBOOK_SMALL=1` trains
# for one epoch instead of five.

# %%
import os

os.environ["KERAS_BACKEND"] = "tensorflow"  # before keras is imported

import kcnn  # noqa: E402  (first: it orders the imports of keras and TensorFlow)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # tf.distribute's INFO lines
SMALL = os.environ.get("KCNN_NOTEBOOK_SMALL") == "1"
EPOCHS = 1 if SMALL else 5
print(f"backend: {keras.backend.backend()}, {'small' if SMALL else 'full'} run")

# Two logical CPUs; this must happen before TensorFlow starts using its devices.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
print(tf.config.list_logical_devices("CPU"))

# %% [markdown]
# ## Training on two devices
#
# The strategy sees both logical CPUs. `kcnn.train` builds the model inside the
# strategy's scope (its variables become `MirroredVariable`s, one copy per device),
# and `batch_size` is the *global* batch: each replica gets half of it.

# %%
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
print("replicas in sync:", strategy.num_replicas_in_sync)

(x_train, y_train), (x_test, y_test) = kcnn.data.load_digits()
history = kcnn.train("lenet5", (x_train, y_train), epochs=EPOCHS, batch_size=64,
                     strategy=strategy, verbose=2)
model = history.model
print("a weight is held as:", type(model.weights[0].value).__name__)

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
# model's metadata:

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
env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
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
