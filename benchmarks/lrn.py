"""Forward + backward time of kcnn's LocalResponseNormalization against the reference op.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/lrn.py [--rounds 7] [--no-save]

One float32 batch of (128, 27, 27, 96) (AlexNet's second LRN, Caffe order), a
fixed upstream gradient, and in one process, round by round after a warm-up
(medians of the rounds):

- the reference: `tf.nn.local_response_normalization` on the TensorFlow and
  JAX backends (NHWC, in a tf.function), torch's `nn.LocalResponseNorm` on
  the torch backend (NCHW);
- the layer, as its dispatch picks the implementation, on channels_last and
  channels_first inputs (the backend's training step: tf.function, jax.jit,
  torch eager);
- the alternatives that `kcnn.layers.lrn._implementation` chose against: the
  common `keras.ops` path where the layer uses a backend's own kernel, and on
  TensorFlow the native op between two transposes for channels_first.

Prints each contender's median and its ratio to the reference (targets: the
layer within 1.25x of the TF op on TensorFlow and JAX, within 1x of torch's op
on torch), and writes benchmarks/results/lrn_<backend>.json.
"""

import kcnn  # noqa: I001  (first: it orders triton, keras and TensorFlow)
import argparse
import json
import os
import platform
import statistics

import keras
import numpy as np

from kcnn.layers import lrn

import _bench

SHAPE_NHWC = (128, 27, 27, 96)
SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0
TARGETS = {"tensorflow": 1.25, "jax": 1.25, "torch": 1.0}


def to_nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def tf_reference():
    """tf.nn.local_response_normalization, forward + backward, on NHWC numpy arrays."""
    import tensorflow as tf

    @tf.function
    def step(x, g):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.local_response_normalization(x, SIZE // 2, K, ALPHA, BETA)
        return y, tape.gradient(y, x, output_gradients=g)

    def bind(x, g):
        x, g = tf.constant(x), tf.constant(g)
        return lambda: [t.numpy() for t in step(x, g)]

    return bind


def backend_step(fn):
    """fn's forward + backward the way this backend trains, on numpy arrays (x, g)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(x, g):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            return y, tape.gradient(y, x, output_gradients=g)

        def bind(x, g):
            x, g = tf.constant(x), tf.constant(g)
            return lambda: [t.numpy() for t in step(x, g)]

        return bind
    if backend == "jax":
        import jax

        @jax.jit
        def step(x, g):
            y, vjp = jax.vjp(fn, x)
            return y, vjp(g)[0]

        def bind(x, g):
            x, g = jax.numpy.asarray(x), jax.numpy.asarray(g)
            return lambda: [np.asarray(t) for t in jax.block_until_ready(step(x, g))]

        return bind
    import torch

    def run(x, g):
        x = x.detach().requires_grad_(True)
        y = fn(x)
        y.backward(g)
        return [y.detach().numpy(), x.grad.numpy()]

    def bind(x, g):
        x, g = torch.from_numpy(x), torch.from_numpy(g)
        return lambda: run(x, g)

    return bind


def contenders(x_nhwc, g_nhwc):
    """The reference's name and {name: (zero-argument run, layout of its outputs)}."""
    backend = keras.backend.backend()
    data = {"NHWC": (x_nhwc, g_nhwc), "NCHW": (to_nchw(x_nhwc), to_nchw(g_nhwc))}
    if backend == "torch":
        import torch

        module = torch.nn.LocalResponseNorm(SIZE, alpha=ALPHA * SIZE, beta=BETA, k=K)
        reference, layout = "torch.nn.LocalResponseNorm (NCHW)", "NCHW"
        runs = {reference: (backend_step(module)(*data[layout]), layout)}
    else:
        reference, layout = "tf.nn.local_response_normalization (NHWC)", "NHWC"
        runs = {reference: (tf_reference()(*data[layout]), layout)}

    for data_format, layout, axis in (("channels_last", "NHWC", -1),
                                      ("channels_first", "NCHW", 1)):
        layer = kcnn.layers.LocalResponseNormalization(
            SIZE, ALPHA, BETA, K, data_format=data_format)
        picked = lrn._implementation(backend, 4, axis % 4, "float32").__name__
        runs[f"kcnn layer, {data_format} (uses {picked})"] = (
            backend_step(layer)(*data[layout]), layout)
        if picked != "_lrn_ops":
            def common(x, axis=axis):
                return lrn._lrn_ops(x, SIZE, ALPHA, BETA, K, axis)

            runs[f"common keras.ops path, {data_format}"] = (
                backend_step(common)(*data[layout]), layout)
    if backend == "tensorflow":
        import tensorflow as tf

        def transposed(x):
            y = lrn._lrn_tensorflow(tf.transpose(x, [0, 2, 3, 1]), SIZE, ALPHA, BETA, K, 3)
            return tf.transpose(y, [0, 3, 1, 2])

        runs["tf op between transposes, channels_first"] = (
            backend_step(transposed)(*data["NCHW"]), "NCHW")
    return reference, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    x = (3.0 * rng.standard_normal(SHAPE_NHWC)).astype("float32")
    g = rng.standard_normal(SHAPE_NHWC).astype("float32")
    reference_name, runs = contenders(x, g)

    # Warm-up (JAX compiles here) and a check that every contender agrees.
    expected = None
    errors = {}
    for name, (run, layout) in runs.items():
        for _ in range(args.warmup):
            outputs = run()
        if layout == "NCHW":
            outputs = [a.transpose(0, 2, 3, 1) for a in outputs]
        if expected is None:
            expected = outputs
        errors[name] = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                           for a, b in zip(outputs, expected))

    times = _bench.interleaved({name: run for name, (run, _) in runs.items()}, args.rounds)

    medians = {name: statistics.median(t) for name, t in times.items()}
    ratios = {name: m / medians[reference_name] for name, m in medians.items()}
    target = TARGETS[backend]
    print(f"LRN forward+backward, {SHAPE_NHWC} float32, backend {backend}, "
          f"{args.rounds} rounds, target for the layer <= {target}x the reference")
    print(f"{'contender':58s} {'median ms':>10s} {'ratio':>6s} {'max rel diff':>13s}")
    for name in runs:
        print(f"{name:58s} {medians[name] * 1e3:10.1f} {ratios[name]:6.2f} "
              f"{errors[name]:13.1e}")
    layer_ratio = max(r for name, r in ratios.items() if name.startswith("kcnn layer"))
    within = layer_ratio <= target
    print(f"slowest layout of the layer: {layer_ratio:.2f}x the reference "
          f"({'within' if within else 'ABOVE'} the target of {target}x)")

    if not args.no_save:
        out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"lrn_{backend}.json")
        record = {
            "benchmark": "lrn forward+backward",
            "backend": backend,
            "shape_nhwc": list(SHAPE_NHWC),
            "dtype": "float32",
            "reference": reference_name,
            "target_ratio": target,
            "rounds": args.rounds,
            "median_ms": {n: round(m * 1e3, 2) for n, m in medians.items()},
            "ratio": {n: round(r, 3) for n, r in ratios.items()},
            "layer_ratio": round(layer_ratio, 3),
            "within_target": within,
            "max_rel_diff": errors,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "keras": keras.__version__,
        }
        with open(path, "w") as f:
            json.dump(record, f, indent=2)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
