"""What the padding layers cost: kcnn's builders, whose convolutions and pools pad
inside themselves, against the same model with a `ZeroPadding2D` layer before
each of them (the issue's lever "Padding layers on TensorFlow and torch").

    KERAS_BACKEND=torch .venv/bin/python benchmarks/layers.py [--models resnet50 mobilenet_v2]
        [--batch-size 16] [--image-size 224] [--rounds 5] [--threads 2]

kcnn builds torch's symmetric `Conv2d(padding=p)` as its `Conv2D` /
`DepthwiseConv2D(padding=p)` (`kcnn.layers.conv._TorchPadding`): on torch the
pad happens inside torch's kernel, on TensorFlow and JAX it is a pad made
inside the layer. (A model's padded `TorchMaxPooling2D`, if any, counts too; the
builders' padded max pools keep a `ZeroPadding2D` layer, which exports need.) The
contenders, one process, the same weights, timed in interleaved rounds
(`_bench.interleaved`) after a warm-up:

- "kcnn": the model as built;
- "pad_layers": the form kcnn's builders made before, a clone in which each
  such layer is a `ZeroPadding2D(p)` layer and a "valid" layer (a padded max
  pool: Keras's `MaxPooling2D` after the zeros, equal after a ReLU).

A training step is `train_on_batch` (SGD with momentum, sparse cross-entropy
from logits), an inference step `predict_on_batch`, as in
benchmarks/throughput.py. Writes results/layers_<backend>.json: per model and
mode the seconds per step of every round and their spread, and the median
time ratio pad_layers / kcnn (above 1: the padding layers are slower) with the
spread of the per-round ratios.
"""

import kcnn  # noqa: I001  (before TensorFlow and torch: it orders triton, keras, TF)
import argparse

import keras
import numpy as np

import _bench
from kcnn.layers.pooling import TorchMaxPooling2D
from throughput import keras_steps

BACKEND = keras.backend.backend()


def _explicit(layer):
    """The layer's symmetric padding (rows, cols) if it pads inside itself, else None."""
    padding = getattr(layer, "padding", None)
    if isinstance(layer, TorchMaxPooling2D) and not layer.ceil_mode and any(padding):
        return tuple(padding)
    if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D) and \
            not isinstance(padding, str):
        return tuple(padding)
    return None


def pad_layers(model):
    """A clone of `model`, same weights, with a ZeroPadding2D layer before each layer
    that pads inside itself, and that layer "valid"."""
    pads = {layer.name: _explicit(layer) for layer in model.layers if _explicit(layer)}

    def clone(layer):
        config = layer.get_config()
        if layer.name not in pads:
            return layer.__class__.from_config(config)
        if isinstance(layer, TorchMaxPooling2D):
            return keras.layers.MaxPooling2D(layer.pool_size, layer.strides,
                                             data_format=layer.data_format, name=layer.name)
        config["padding"] = "valid"
        return layer.__class__.from_config(config)

    def call(layer, x, *args, **kwargs):
        if layer.name in pads:
            x = keras.layers.ZeroPadding2D(pads[layer.name], data_format=layer.data_format,
                                           name=f"{layer.name}_pad")(x)
        return layer(x, *args, **kwargs)

    twin = keras.models.clone_model(model, clone_function=clone, call_function=call)
    twin.set_weights(model.get_weights())
    return twin, len(pads)


def run(name, batch, size, rounds, warmup):
    shape = (size, size, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 1000, size=batch).astype("int64")
    model = kcnn.create_model(name, input_shape=shape, classifier_activation=None)
    twin, padded = pad_layers(model)
    reference = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    error = float(np.abs(keras.ops.convert_to_numpy(twin.predict_on_batch(x)) - reference).max()
                  / np.abs(reference).max())
    print(name, f"{padded} padded layers, max error of scale {error:.2g}", flush=True)
    fns = {"kcnn": keras_steps(model, x, y), "pad_layers": keras_steps(twin, x, y)}
    record = {"padded_layers": padded, "max_error_of_scale": error, "modes": {}}
    for index, mode in enumerate(("train", "infer")):
        runs = {key: fn[index] for key, fn in fns.items()}
        for step in runs.values():
            _bench.warm_up(step, warmup, steps=1)
        times = _bench.interleaved(runs, rounds)
        record["modes"][mode] = {
            "seconds": {key: _bench.spread(t) for key, t in times.items()},
            "pad_layers_vs_kcnn": _bench.ratio(times["pad_layers"], times["kcnn"]),
        }
        print(name, mode, record["modes"][mode]["pad_layers_vs_kcnn"]["of_medians"], flush=True)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default=_bench.RESULTS)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    threads = _bench.pin_threads(args.threads)
    record = {"benchmark": "layers", "threads": threads, "batch_size": args.batch_size,
              "image_size": args.image_size, "rounds": args.rounds, "models": {}}
    for name in args.models:
        record["models"][name] = run(name, args.batch_size, args.image_size, args.rounds,
                                     args.warmup)
    _bench.save(record, args.out, f"layers_{BACKEND}", args.no_save)


if __name__ == "__main__":
    main()
