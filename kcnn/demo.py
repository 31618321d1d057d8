"""The README's first command: train LeNet-5 on the offline digits, report, save.

    python -m kcnn.demo [--epochs 15] [--out runs]

Trains on scikit-learn's bundled handwritten digits (no download), prints the
test accuracy and saves the model as a new `.keras` file (never overwriting).
"""

import argparse
import os
import time

import keras  # before anything that imports TensorFlow (torch backend)
import numpy as np

import kcnn
from kcnn.data import load_digits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--out", default="runs", help="folder for the saved model (default runs/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_digits()
    mean, std = float(x_train.mean()), float(x_train.std())
    def standardise(x):
        return ((x.astype("float32") - mean) / std)
    model = kcnn.lenet5()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(standardise(x_train), y_train, epochs=args.epochs,
              batch_size=args.batch_size, validation_split=0.1, verbose=2)
    _, accuracy = model.evaluate(standardise(x_test), y_test, verbose=0)
    elapsed = time.perf_counter() - start
    print(f"LeNet-5 on {len(x_test)} held-out digits: test accuracy {accuracy:.4f} "
          f"({elapsed:.0f} s on the {keras.backend.backend()} backend)")

    model.metadata["preprocessing"].update(
        {"mean": [mean / 255.0], "std": [std / 255.0]})
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"lenet5-digits-{time.strftime('%Y%m%d-%H%M%S')}")
    path, n = f"{stem}.keras", 1
    while os.path.exists(path):  # never overwrite a model saved earlier
        path, n = f"{stem}-{n}.keras", n + 1
    model.save(path)
    print(f"saved {path}")
    return accuracy


if __name__ == "__main__":
    main()
