"""Images/s in inference with batch norm folded into the convolutions, against unfolded.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/folding.py [--quick | --full]
        [--models resnet50 mobilenet_v2] [--batch-size 16] [--image-size 224]
        [--rounds 7] [--out DIR]

For each model (random weights, the batch norms' statistics and affine
parameters set to random values, as trained ones are), one random float32
batch, in one process on the current Keras backend: `model.predict_on_batch`
(what kcnn.predict and kcnn.evaluate call per batch) of the model as built and
of `kcnn.fold_batch_norm(model)`, in interleaved rounds (`_bench.interleaved`)
after a warm-up that includes JAX's compilation and TensorFlow's tracing. Also
the seconds `fold_batch_norm` takes (median of three calls: the clone and the
folded weights) and those of refreshing the weights of kcnn.predict's cached
folded model (`kcnn.folding.inference_model` on a model seen before), and the
largest difference of the outputs, relative to their largest magnitude.
Writes `folding_<backend>.json` in --out.
"""

import kcnn  # noqa: I001  (first: it orders triton, keras and TensorFlow)
import argparse
import statistics
import time

import keras
import numpy as np

import _bench
from kcnn import _keras_internal as internal
from kcnn.folding import fold_batch_norm, inference_model

PRESETS = {
    "quick": dict(models=["resnet18", "mobilenet_v2"], batch_size=16, image_size=64,
                  rounds=7, warmup=2),
    "full": dict(models=["resnet50", "mobilenet_v2"], batch_size=16, image_size=224,
                 rounds=7, warmup=2),
}


def randomize_batch_norms(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in internal.flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0.0, 0.1, n))
            layer.moving_mean.assign(rng.normal(0.0, 0.1, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
    return model


def seconds(run, times=3):
    elapsed = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        elapsed.append(time.perf_counter() - start)
    return _bench.significant(statistics.median(elapsed))


def measure(model, s):
    x = np.random.default_rng(0).standard_normal(
        (s["batch_size"],) + tuple(model.input_shape[1:])).astype("float32")
    fold_seconds = seconds(lambda: fold_batch_norm(model))
    inference_model(model)
    refresh_seconds = seconds(lambda: inference_model(model))
    folded = fold_batch_norm(model)
    runs = {"unfolded": lambda: model.predict_on_batch(x),
            "folded": lambda: folded.predict_on_batch(x)}
    first = {name: _bench.warm_up(run, s["warmup"], steps=1)[0] for name, run in runs.items()}
    expected = keras.ops.convert_to_numpy(runs["unfolded"]())
    difference = np.abs(keras.ops.convert_to_numpy(runs["folded"]()) - expected).max()
    times = _bench.interleaved(runs, s["rounds"])
    images = {name: [s["batch_size"] / t for t in ts] for name, ts in times.items()}
    return {
        "input_shape": list(model.input_shape[1:]),
        "batch_norms": sum(isinstance(layer, keras.layers.BatchNormalization)
                           for layer in internal.flatten_layers(model)),
        "batch_norms_left": sum(isinstance(layer, keras.layers.BatchNormalization)
                                for layer in internal.flatten_layers(folded)),
        "fold_seconds": fold_seconds, "refresh_seconds": refresh_seconds,
        "first_call_seconds": {k: _bench.significant(v) for k, v in first.items()},
        "max_relative_difference": _bench.significant(
            float(difference / np.abs(expected).max())),
        "images_per_second": {k: _bench.spread(v) for k, v in images.items()},
        "folded_over_unfolded": _bench.ratio(images["folded"], images["unfolded"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _bench.add_common_arguments(parser)
    parser.add_argument("--models", nargs="+", help="registered builder names")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--image-size", type=int)
    args = parser.parse_args()
    s = _bench.settings(args, PRESETS)
    s["threads"] = _bench.pin_threads(args.threads)
    record = {"benchmark": "folding", "settings": s, "models": {}}
    for name in s["models"]:
        keras.utils.set_random_seed(0)
        model = randomize_batch_norms(kcnn.create_model(
            name, input_shape=(s["image_size"], s["image_size"], 3)))
        result = record["models"][name] = measure(model, s)
        for contender, spread in result["images_per_second"].items():
            print(f"{name} {contender:>9}: {spread['median']:8.2f} images/s "
                  f"({spread['min']:.2f}-{spread['max']:.2f})")
        ratio = result["folded_over_unfolded"]
        print(f"{name} folded / unfolded: {ratio['of_medians']:.3f} (per round "
              f"{ratio['per_round']['min']:.2f}-{ratio['per_round']['max']:.2f}); fold "
              f"{result['fold_seconds']} s, refresh {result['refresh_seconds']} s, "
              f"{result['batch_norms']} -> {result['batch_norms_left']} batch norms, "
              f"max relative difference {result['max_relative_difference']}", flush=True)
    _bench.save(record, args.out, f"folding_{keras.backend.backend()}", args.no_save)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"{time.perf_counter() - start:.0f} s")
