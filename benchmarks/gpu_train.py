"""A short LeNet-5 training that must learn, for benchmarks/gpu.sh.

    KERAS_BACKEND=jax python benchmarks/gpu_train.py [--out DIR] [--allow-cpu]

Trains `kcnn.lenet5` with `model.fit` on in-memory arrays (no TensorFlow, no
download: the GPU machines gpu.sh is for have neither): ten classes, each a
fixed random 32x32 pattern (8x8 blocks of 4x4 pixels) plus Gaussian noise of
the pattern's own size, 4096 training and 1024 held-out images, 4 epochs of
Adam. Chance is 10%; it must reach at least MIN_ACCURACY on the held-out images
(it reaches about 100% on a CPU). Exits 1 if it does not learn, or, without
--allow-cpu, if the backend does not compute on a GPU. Writes
`train_lenet5_<backend>.json` in --out.
"""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import kcnn  # noqa: E402,I001  (first: it orders triton and keras)
import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

CLASSES = 10
MIN_ACCURACY = 0.6  # six times chance


def data(seed=0):
    """(x_train, y_train, x_test, y_test): noisy copies of one pattern per class."""
    rng = np.random.default_rng(seed)
    patterns = np.kron(rng.standard_normal((CLASSES, 8, 8)), np.ones((4, 4)))

    def draw(n):
        y = rng.integers(0, CLASSES, size=n)
        x = patterns[y] + rng.standard_normal((n, 32, 32))
        return x[..., None].astype("float32"), y.astype("int64")

    return (*draw(4096), *draw(1024))


def device():
    """Where the backend computes: "gpu" or "cpu"."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "gpu" if jax.devices()[0].platform == "gpu" else "cpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "results", "gpu"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--allow-cpu", action="store_true",
                        help="train on a CPU too (a check of this script)")
    args = parser.parse_args()
    where = device()
    if where != "gpu" and not args.allow_cpu:
        print(f"gpu_train.py: the {keras.backend.backend()} backend sees no GPU",
              file=sys.stderr)
        return 1

    keras.utils.set_random_seed(0)
    x, y, x_test, y_test = data()
    model = kcnn.lenet5(input_shape=(32, 32, 1), classes=CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(np.argmax(model.predict(x_test, batch_size=256, verbose=0),
                                       axis=-1) == y_test))
    learned = accuracy >= MIN_ACCURACY
    record = {"benchmark": "gpu_train", "model": "lenet5", "backend": keras.backend.backend(),
              "device": where, "epochs": args.epochs, "train_images": len(x),
              "test_images": len(x_test), "loss": [float(v) for v in history.history["loss"]],
              "test_accuracy": accuracy, "chance": 1 / CLASSES,
              "min_accuracy": MIN_ACCURACY, "learned": learned,
              "fit_seconds": round(seconds, 1)}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"train_lenet5_{keras.backend.backend()}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"lenet5 on {keras.backend.backend()} ({where}): held-out accuracy "
          f"{accuracy:.3f} (chance {1 / CLASSES:.2f}, needed {MIN_ACCURACY}) after "
          f"{args.epochs} epochs in {seconds:.1f} s; wrote {path}")
    if not learned:
        print("gpu_train.py: LeNet-5 did not learn", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
