"""The README's first command: train LeNet-5 on the offline digits, report, save.

    python -m kcnn.demo [--epochs N] [--out runs]      (what `make digits` runs)

`digits` trains with `kcnn.train` and the default recipe on scikit-learn's
bundled handwritten digits (no download), evaluates on the held-out test
split and saves the model as a new `.keras` file (never overwriting an
earlier one). The command line is `kcnn.cli.demo`.
"""

import os
import time

import keras

from kcnn.training import evaluate, train


def digits(*, epochs=None, out="runs", seed=0, verbose=2):
    """Train and evaluate LeNet-5 on the digits; save it under `out`.

    Returns:
        A dict: `top1` (test accuracy), `examples` (test images), `seconds`
        (training and evaluation), `backend` and `path` (the `.keras` file).
    """
    start = time.perf_counter()
    history = train("lenet5", "digits", epochs=epochs, seed=seed, verbose=verbose)
    model = history.model
    result = evaluate(model, "digits", split="test")
    seconds = time.perf_counter() - start

    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"lenet5-digits-{time.strftime('%Y%m%d-%H%M%S')}")
    path, n = f"{stem}.keras", 1
    while os.path.exists(path):  # never overwrite a model saved earlier
        path, n = f"{stem}-{n}.keras", n + 1
    model.save(path)
    return {"top1": result["top1"], "examples": int(result["confusion_matrix"].sum()),
            "seconds": seconds, "backend": keras.backend.backend(), "path": path}


if __name__ == "__main__":
    from kcnn.cli.demo import main
    raise SystemExit(main())
