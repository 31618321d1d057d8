"""Batch norm's time on the torch and JAX backends: kcnn's layer, Keras's and the alternatives.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/batchnorm.py [--rounds 7]
        [--models resnet50 mobilenet_v2] [--image-size 224] [--no-save]
    KERAS_BACKEND=jax .venv/bin/python benchmarks/batchnorm.py [...]

In one process, round by round after a warm-up (`_bench.interleaved`, medians
of the rounds, ratios to Keras's layer; below 1 is faster):

- the layer: one float32 (16, 56, 56, 256) batch (ResNet-50's first stage),
  channels-last and the channels-first equivalent, training forward +
  backward (gradients w.r.t. the input, gamma and beta; the moving statistics
  updated) and inference forward.
  torch: `keras.layers.BatchNormalization`, kcnn's layer (which runs
  `torch.nn.functional.batch_norm`) and that function alone.
  JAX, all under `jax.jit`: Keras's layer through `stateless_call`; one-pass
  moments (the mean of x and of x * x); `jax.nn.standardize`; one-pass
  moments on the (N*H*W, C) reshaped view; kcnn's layer.
- the models, at --batch-size and --image-size. torch: `train_on_batch` and
  `predict_on_batch` of kcnn's models with kcnn's layer as it dispatches and
  with every batch norm forced onto Keras's path. JAX: `train_on_batch` with
  one-pass moments against Keras's two passes (the decision not to build it:
  see kcnn/layers/normalization.py); run it with `--models resnet50
  --image-size 160`.

Writes benchmarks/results/batchnorm_<backend>.json.
"""

import kcnn  # noqa: I001  (first: it orders triton, keras and TensorFlow)
import argparse
import contextlib
import os

import keras
import numpy as np

import _bench
from kcnn.layers import BatchNormalization

SHAPE = (16, 56, 56, 256)
EPSILON, MOMENTUM = 1e-5, 0.9
PRESETS = {
    "quick": dict(rounds=7, warmup=2, steps=None, models=["resnet50", "mobilenet_v2"],
                  image_size=224, batch_size=16),
    "full": dict(rounds=9, warmup=3, steps=None, models=["resnet50", "mobilenet_v2"],
                 image_size=224, batch_size=16),
}


def _layout(a, data_format):
    return a if data_format == "channels_last" else np.ascontiguousarray(
        a.transpose(0, 3, 1, 2))


def _layers(data_format):
    axis = -1 if data_format == "channels_last" else 1
    shape = _layout(np.empty(SHAPE, "float32"), data_format).shape
    made = {}
    for name, cls in (("keras", keras.layers.BatchNormalization),
                      ("kcnn", BatchNormalization)):
        layer = cls(axis=axis, epsilon=EPSILON, momentum=MOMENTUM)
        layer.build(shape)
        made[name] = layer
    return made


def torch_layer_runs(x, upstream, data_format):
    """{contender: {mode: zero-argument call}} on the torch backend."""
    import torch

    x = torch.from_numpy(_layout(x, data_format))
    upstream = torch.from_numpy(_layout(upstream, data_format))
    runs = {}
    for name, layer in _layers(data_format).items():
        def train(layer=layer):
            xi = x.clone().requires_grad_(True)
            layer(xi, training=True).backward(upstream)

        def infer(layer=layer):
            with torch.no_grad():
                layer(x, training=False)

        runs[name] = {"train fwd+bwd": train, "infer fwd": infer}
    channels = SHAPE[-1]
    gamma = torch.ones(channels, requires_grad=True)
    beta = torch.zeros(channels, requires_grad=True)
    mean, variance = torch.zeros(channels), torch.ones(channels)

    def as_nchw(t):
        return t.permute(0, 3, 1, 2) if data_format == "channels_last" else t

    def train():
        xi = x.clone().requires_grad_(True)
        y = torch.nn.functional.batch_norm(as_nchw(xi), torch.zeros(channels),
                                           torch.zeros(channels), gamma, beta, True, 1.0,
                                           EPSILON)
        y.backward(as_nchw(upstream))

    def infer():
        with torch.no_grad():
            torch.nn.functional.batch_norm(as_nchw(x), mean, variance, gamma, beta, False,
                                           0.0, EPSILON)

    runs["torch batch_norm"] = {"train fwd+bwd": train, "infer fwd": infer}
    return runs


# -- JAX's alternatives: (x, gamma, beta) -> (y, mean, biased variance), NHWC or NCHW ------

def _jax_alternatives(axis):
    import jax
    import jax.numpy as jnp

    def shaped(v, ndim):
        shape = [1] * ndim
        shape[axis] = -1
        return v.reshape(shape)

    def one_pass(x, gamma, beta):
        axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        mean = jnp.mean(x, axes)
        variance = jnp.maximum(jnp.mean(x * x, axes) - mean * mean, 0.0)
        inv = jax.lax.rsqrt(variance + EPSILON) * gamma
        y = x * shaped(inv, x.ndim) + shaped(beta - mean * inv, x.ndim)
        return y, mean, variance

    def standardize(x, gamma, beta):
        axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        y = jax.nn.standardize(x, axes, epsilon=EPSILON)
        mean = jnp.mean(x, axes)
        variance = jnp.mean(x * x, axes) - mean * mean
        return y * shaped(gamma, x.ndim) + shaped(beta, x.ndim), mean, variance

    def reshaped(x, gamma, beta):
        if axis % x.ndim != x.ndim - 1:
            return one_pass(x, gamma, beta)  # the view needs channels last
        flat = x.reshape(-1, x.shape[-1])
        y, mean, variance = one_pass(flat, gamma, beta)
        return y.reshape(x.shape), mean, variance

    return {"one-pass moments": one_pass, "jax.nn.standardize": standardize,
            "(N*H*W, C) view": reshaped}


def jax_layer_runs(x, upstream, data_format):
    """{contender: {mode: zero-argument call}} on the JAX backend, all under jax.jit."""
    import jax

    axis = -1 if data_format == "channels_last" else 1
    x = jax.device_put(_layout(x, data_format))
    upstream = jax.device_put(_layout(upstream, data_format))
    runs = {}
    for name, layer in _layers(data_format).items():
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(x, trainable, non_trainable, layer=layer):
            y, non_trainable = layer.stateless_call(trainable, non_trainable, x,
                                                    training=True)
            return (y * upstream).sum(), non_trainable

        train_step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        infer_step = jax.jit(lambda x, t, n, layer=layer: layer.stateless_call(
            t, n, x, training=False)[0])
        runs[name] = {
            "train fwd+bwd": lambda s=train_step, t=trainable, n=non_trainable:
                jax.block_until_ready(s(x, t, n)),
            "infer fwd": lambda s=infer_step, t=trainable, n=non_trainable:
                jax.block_until_ready(s(x, t, n))}
    channels = SHAPE[-1]
    gamma, beta = jax.numpy.ones(channels), jax.numpy.zeros(channels)
    moving_mean, moving_variance = jax.numpy.zeros(channels), jax.numpy.ones(channels)
    for name, fn in _jax_alternatives(axis).items():
        def loss(x, gamma, beta, fn=fn):
            y, mean, variance = fn(x, gamma, beta)
            return (y * upstream).sum(), (moving_mean * MOMENTUM + mean * (1 - MOMENTUM),
                                          moving_variance * MOMENTUM
                                          + variance * (1 - MOMENTUM))

        train_step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
        runs[name] = {"train fwd+bwd": lambda s=train_step: jax.block_until_ready(
            s(x, gamma, beta))}
    return runs


def check_jax_alternatives(data_format):
    """Largest difference of each alternative's outputs and statistics from Keras's layer."""
    import jax

    rng = np.random.default_rng(1)
    x = _layout(rng.normal(1, 4, (4, 5, 7, 6)).astype("float32"), data_format)
    axis = -1 if data_format == "channels_last" else 1
    layer = keras.layers.BatchNormalization(axis=axis, epsilon=EPSILON, momentum=0.0)
    layer.build(x.shape)
    expected = [np.asarray(layer(x, training=True)), layer.moving_mean.numpy(),
                layer.moving_variance.numpy()]
    ones, zeros = jax.numpy.ones(6), jax.numpy.zeros(6)
    return {name: max(float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))
                      for a, b in zip(jax.jit(fn)(x, ones, zeros), expected))
            for name, fn in _jax_alternatives(axis).items()}


def measure_layer(s):
    rng = np.random.default_rng(0)
    x = rng.normal(1, 2, SHAPE).astype("float32")
    upstream = rng.normal(size=SHAPE).astype("float32")
    backend = keras.backend.backend()
    record = {}
    for data_format in ("channels_last", "channels_first"):
        runs = (torch_layer_runs if backend == "torch" else jax_layer_runs)(
            x, upstream, data_format)
        by_mode = {}
        for name, modes in runs.items():
            for mode, run in modes.items():
                by_mode.setdefault(mode, {})[name] = run
        record[data_format] = {}
        for mode, contenders in by_mode.items():
            for run in contenders.values():
                for _ in range(max(1, s["warmup"])):
                    run()
            times = _bench.interleaved(contenders, s["rounds"])
            result = {name: {"ms": _bench.spread([t * 1e3 for t in ts])}
                      for name, ts in times.items()}
            for name in result:
                result[name]["ratio_to_keras"] = _bench.ratio(times[name], times["keras"])
                print(f"{data_format:15s} {mode:14s} {name:20s} "
                      f"{result[name]['ms']['median']:9.1f} ms  x"
                      f"{result[name]['ratio_to_keras']['of_medians']:.2f} of Keras's "
                      f"(per-round {result[name]['ratio_to_keras']['per_round']['min']:.2f}"
                      f"-{result[name]['ratio_to_keras']['per_round']['max']:.2f})",
                      flush=True)
            record[data_format][mode] = result
        if backend == "jax":
            record[data_format]["max_relative_difference_from_keras"] = \
                check_jax_alternatives(data_format)
    return record


@contextlib.contextmanager
def keras_path():
    """Every kcnn BatchNormalization takes Keras's path (the baseline)."""
    fused = BatchNormalization._fused_torch
    BatchNormalization._fused_torch = lambda self, inputs, mask: False
    try:
        yield
    finally:
        BatchNormalization._fused_torch = fused


@contextlib.contextmanager
def one_pass_moments():
    """Every kcnn BatchNormalization computes its batch moments in one pass (JAX)."""
    import jax.numpy as jnp

    def moments(self, inputs, mask):
        mean = jnp.mean(inputs, self._reduction_axes)
        square = jnp.mean(inputs * inputs, self._reduction_axes)
        return mean, jnp.maximum(square - mean * mean, 0.0)

    BatchNormalization._moments = moments
    try:
        yield
    finally:
        del BatchNormalization._moments


def measure_jax_models(s):
    """kcnn's models' train step with one-pass moments against Keras's two passes.

    JAX traces a step once: each contender is a model of its own, traced (in
    its warm-up) under its setting."""
    from throughput import keras_steps

    rng = np.random.default_rng(0)
    size, batch = s["image_size"], s["batch_size"]
    record = {}
    for name in s["models"]:
        x = rng.normal(size=(batch, size, size, 3)).astype("float32")
        y = rng.integers(0, 1000, batch)
        contenders = {}
        for contender, setting in (("one-pass", one_pass_moments),
                                   ("keras", contextlib.nullcontext)):
            model = kcnn.create_model(name, input_shape=(size, size, 3),
                                      classifier_activation=None)
            train, _ = keras_steps(model, x, y)
            with setting():
                for _ in range(max(1, s["warmup"])):
                    train()
            contenders[contender] = train
        times = _bench.interleaved(contenders, s["rounds"])
        result = {c: {"images_per_s": _bench.spread([batch / t for t in ts])}
                  for c, ts in times.items()}
        result["time_ratio_one_pass_to_keras"] = _bench.ratio(times["one-pass"],
                                                              times["keras"])
        record[name] = {"train": result}
        print(f"{name:13s} train one-pass {result['one-pass']['images_per_s']['median']:7.2f}"
              f" img/s, Keras's {result['keras']['images_per_s']['median']:7.2f} img/s:"
              f" time x{result['time_ratio_one_pass_to_keras']['of_medians']:.2f}"
              f" (per-round {result['time_ratio_one_pass_to_keras']['per_round']['min']:.2f}"
              f"-{result['time_ratio_one_pass_to_keras']['per_round']['max']:.2f})",
              flush=True)
        del model, train, contenders
        keras.backend.clear_session()
    return record


def measure_models(s):
    from throughput import keras_steps

    rng = np.random.default_rng(0)
    size, batch = s["image_size"], s["batch_size"]
    record = {}
    for name in s["models"]:
        model = kcnn.create_model(name, input_shape=(size, size, 3),
                                  classifier_activation=None)
        x = rng.normal(size=(batch, size, size, 3)).astype("float32")
        y = rng.integers(0, 1000, batch)
        train, infer = keras_steps(model, x, y)
        record[name] = {}
        for mode, step in (("train", train), ("infer", infer)):
            def baseline(step=step):
                with keras_path():
                    step()

            contenders = {"fused": step, "keras": baseline}
            for run in contenders.values():
                for _ in range(max(1, s["warmup"])):
                    run()
            times = _bench.interleaved(contenders, s["rounds"])
            result = {c: {"images_per_s": _bench.spread([batch / t for t in ts])}
                      for c, ts in times.items()}
            result["time_ratio_fused_to_keras"] = _bench.ratio(times["fused"], times["keras"])
            record[name][mode] = result
            print(f"{name:13s} {mode:6s} fused {result['fused']['images_per_s']['median']:7.2f}"
                  f" img/s, Keras's path {result['keras']['images_per_s']['median']:7.2f}"
                  f" img/s: time x{result['time_ratio_fused_to_keras']['of_medians']:.2f}"
                  f" (per-round {result['time_ratio_fused_to_keras']['per_round']['min']:.2f}"
                  f"-{result['time_ratio_fused_to_keras']['per_round']['max']:.2f})",
                  flush=True)
        del model, train, infer, contenders
        keras.backend.clear_session()  # free one model's memory before the next
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _bench.add_common_arguments(parser)
    parser.add_argument("--models", nargs="+", help="kcnn model names (torch only)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--skip-layer", action="store_true")
    parser.add_argument("--skip-models", action="store_true")
    args = parser.parse_args()
    s = _bench.settings(args, PRESETS)
    backend = keras.backend.backend()
    if backend not in ("torch", "jax"):
        parser.error(f"run on the torch or JAX backend; KERAS_BACKEND is {backend!r}")
    if backend == "torch":
        import torch

        s["torch_threads"] = torch.get_num_threads()
    s["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    record = {"settings": s, "shape": SHAPE}
    if not args.skip_layer:
        record["layer"] = measure_layer(s)
    if not args.skip_models:
        record["models"] = (measure_models if backend == "torch" else measure_jax_models)(s)
    _bench.save(record, args.out, f"batchnorm_{backend}", args.no_save)


if __name__ == "__main__":
    main()
