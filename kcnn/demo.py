"""The README's first command: train LeNet-5 on the offline digits, report, save.

    python -m kcnn.demo [--epochs N] [--out runs]

Trains with `kcnn.train` and the default recipe on scikit-learn's bundled
handwritten digits (no download), prints the held-out test accuracy and saves
the model as a new `.keras` file (never overwriting an earlier one).
"""

import argparse
import os
import time

import kcnn  # first: orders the triton, keras and TensorFlow imports
import keras


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the recipe's, 20 for digits)")
    parser.add_argument("--out", default="runs", help="folder for the saved model (default runs/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    history = kcnn.train("lenet5", "digits", epochs=args.epochs, seed=args.seed, verbose=2)
    model = history.model
    result = kcnn.evaluate(model, "digits", split="test")
    elapsed = time.perf_counter() - start
    backend = keras.backend.backend()
    print(f"LeNet-5 on the {result['confusion_matrix'].sum()} held-out digits: "
          f"test accuracy {result['top1']:.4f} ({elapsed:.0f} s on the {backend} backend)")

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"lenet5-digits-{time.strftime('%Y%m%d-%H%M%S')}")
    path, n = f"{stem}.keras", 1
    while os.path.exists(path):  # never overwrite a model saved earlier
        path, n = f"{stem}-{n}.keras", n + 1
    model.save(path)
    print(f"saved {path}")
    return result["top1"]


if __name__ == "__main__":
    main()
