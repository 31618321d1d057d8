"""Images/s of `kcnn.evaluate`'s and `kcnn.predict`'s model step: an eager call against
Keras's compiled predict function.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/eval_speed.py [--quick | --full]
        [--models lenet5 resnet18] [--batch-size 16] [--image-size 64] [--rounds 5]
        [--out DIR]

For each model (random weights; at --image-size, or its own input size where
that is smaller, as LeNet-5's 28x28), one random float32 batch, in one process
on the current Keras backend; after a warm-up (which includes JAX's
compilation and TensorFlow's tracing), round by round (`_bench.interleaved`):

- eager: `model(x, training=False)` and the result to NumPy, what kcnn.evaluate
  and kcnn.predict did for each batch before they ran compiled;
- compiled: `model.predict_on_batch(x)`, what they do now (`jax.jit` on JAX, a
  `tf.function` on TensorFlow; on torch Keras's predict step runs eagerly under
  `torch.no_grad`, compiling only with `jit_compile=True`);
- kcnn.predict: the whole call on `--batch-size` raw uint8 images (resizing,
  cropping and normalising in tf.data, then the compiled step).

A round runs each contender for the same number of steps (--steps, or as many
as took about --unit-seconds in the warm-up). Writes
`eval_speed_<backend>.json` in --out: per model, images/s per round, their
median and spread, and the ratio compiled / eager (above 1: compiled is faster).
A small model shows the cost of running layer by layer; a larger one, the
share of that cost in real work.
"""

import kcnn  # noqa: I001  (first: it orders triton, keras and TensorFlow)
import argparse
import time

import keras
import numpy as np

import _bench

PRESETS = {
    "quick": dict(models=["lenet5", "resnet18"], batch_size=16, image_size=64, rounds=5,
                  steps=None, unit_seconds=1.0, warmup=2),
    "full": dict(models=["lenet5", "resnet50"], batch_size=64, image_size=224, rounds=5,
                 steps=None, unit_seconds=3.0, warmup=3),
}


def build(name, image_size):
    """The model at `image_size`, or at its own input size where that is smaller;
    its preprocessing record crops to the input size."""
    model = kcnn.create_model(name)
    side = model.input_shape[1] if keras.config.image_data_format() == "channels_last" \
        else model.input_shape[2]
    if side > image_size:
        model = kcnn.create_model(name, input_shape=(image_size, image_size, 3))
        side = image_size
    model.metadata["preprocessing"] = dict(model.metadata["preprocessing"],
                                           crop=(side, side), resize=None)
    return model


def contenders(model, batch_size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size,) + tuple(model.input_shape[1:])).astype("float32")
    record = model.metadata["preprocessing"]
    side, channels = record["crop"][0], len(record["mean"])
    images = rng.integers(0, 256, (batch_size, side, side, channels), dtype=np.uint8)
    return {
        "eager": lambda: keras.ops.convert_to_numpy(model(x, training=False)),
        "compiled": lambda: model.predict_on_batch(x),
        "kcnn.predict": lambda: kcnn.predict(model, images, top_k=1, batch_size=batch_size),
    }


def measure(model, s):
    runs = contenders(model, s["batch_size"])
    first, steps = {}, {}
    for name, run in runs.items():
        first[name], steps[name] = _bench.warm_up(run, s["warmup"], s["steps"],
                                                   s["unit_seconds"])
    n = min(steps.values())  # the same steps for every contender

    def repeated(run):
        return lambda: [run() for _ in range(n)]

    times = _bench.interleaved({name: repeated(run) for name, run in runs.items()},
                               s["rounds"])
    images = {name: [s["batch_size"] * n / t for t in ts] for name, ts in times.items()}
    return {
        "input_shape": list(model.input_shape[1:]), "steps_per_round": n,
        "first_call_seconds": {k: _bench.significant(v) for k, v in first.items()},
        "images_per_second": {k: _bench.spread(v) for k, v in images.items()},
        "compiled_over_eager": _bench.ratio(images["compiled"], images["eager"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _bench.add_common_arguments(parser)
    parser.add_argument("--models", nargs="+", help="registered builder names")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--unit-seconds", type=float)
    args = parser.parse_args()
    s = _bench.settings(args, PRESETS)
    record = {"benchmark": "eval_speed", "settings": s, "models": {}}
    for name in s["models"]:
        keras.utils.set_random_seed(0)
        result = record["models"][name] = measure(build(name, s["image_size"]), s)
        for contender, spread in result["images_per_second"].items():
            print(f"{name} {contender:>13}: {spread['median']:8.1f} images/s "
                  f"({spread['min']:.1f}-{spread['max']:.1f})")
        print(f"{name} compiled / eager: {result['compiled_over_eager']['of_medians']:.2f}")
    _bench.save(record, args.out, f"eval_speed_{keras.backend.backend()}", args.no_save)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"{time.perf_counter() - start:.0f} s")
