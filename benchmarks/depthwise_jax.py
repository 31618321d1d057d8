"""The backward of kcnn's sliced depthwise convolution on JAX: autodiff's
against kcnn's `jax.custom_vjp` (kernel gradient summed by halving).

    KERAS_BACKEND=jax .venv/bin/python benchmarks/depthwise_jax.py
        [--models mobilenet_v2 efficientnet_b0] [--batch-size 16] [--image-size 224]
        [--layer-rounds 7] [--rounds 3] [--no-save]

On JAX, `kcnn.layers.DepthwiseConv2D` is the sum of kh * kw strided slices
of the padded input, each times its per-channel tap. Autodiff's kernel
gradient reduces each tap's product over (N, H, W), and XLA's CPU backend
first copies the strided slice out for each of those reductions;
`kcnn.layers.conv._DEPTHWISE_VJP` (True by default) switches to the custom
VJP, whose kernel gradient adds the halves of the batch axis in an
element-wise loop first. One process, interleaved rounds
(`_bench.interleaved`), after one untimed call each (which compiles):

- layers: at MobileNetV2's and EfficientNet-B0's shapes, the jitted forward
  alone ("forward"), and the forward with its backward (`jax.vjp`: the output
  and the input and kernel gradients of a random output gradient, as for a
  layer inside a network) under each backward ("autodiff", "custom_vjp");
- models: `train_on_batch` (SGD with momentum, sparse cross-entropy from
  logits) of two copies of the model with the same weights, one compiled
  under each backward (the switch is also set before each step, so a
  retrace could not pick the wrong one).

Writes results/depthwise_jax.json: seconds per round and their spread, the
ratio custom_vjp / autodiff (time: below 1 is faster) with the spread of the
per-round ratios, the largest gradient difference between the two, and the
machine's load (`_bench.machine`).
"""

import kcnn  # noqa: I001  (before TensorFlow and torch: it orders triton, keras, TF)
import argparse

import keras
import numpy as np

import _bench
from kcnn.layers import conv

# (input shape NHWC, kernel size, stride, padding): the expanded activations of
# MobileNetV2 (3x3) and EfficientNet-B0 (5x5 too) at batch 16, 224x224.
LAYERS = [
    ((16, 112, 112, 96), 3, 2, "same"),
    ((16, 56, 56, 144), 3, 1, "same"),
    ((16, 28, 28, 192), 3, 1, "same"),
    ((16, 14, 14, 576), 3, 1, "same"),
    ((16, 56, 56, 144), 5, 2, "same"),
    ((16, 28, 28, 240), 5, 1, "same"),
    ((16, 14, 14, 672), 5, 1, "same"),
]


def _with_backward(custom, function):
    """`function` run with the custom VJP switched on or off (read while tracing)."""
    def run(*args):
        conv._DEPTHWISE_VJP = custom
        try:
            return function(*args)
        finally:
            conv._DEPTHWISE_VJP = True
    return run


def layer(shape, kernel_size, stride, padding, rounds):
    import jax

    rng = np.random.default_rng(0)
    x = jax.device_put(rng.standard_normal(shape, dtype=np.float32))
    kernel = jax.device_put(
        rng.standard_normal((kernel_size, kernel_size, shape[-1], 1), dtype=np.float32))

    def forward(x, kernel):
        return conv.depthwise_conv(x, kernel, strides=stride, padding=padding,
                                   data_format="channels_last")

    cotangent = jax.device_put(
        rng.standard_normal(jax.eval_shape(forward, x, kernel).shape, dtype=np.float32))

    def forward_backward(x, kernel, cotangent):  # a layer inside a network: the output
        outputs, backward = jax.vjp(forward, x, kernel)  # is kept, the gradient comes in
        return outputs, backward(cotangent)

    grads = {key: jax.jit(_with_backward(custom, forward_backward))
             for key, custom in (("autodiff", False), ("custom_vjp", True))}
    results = {key: grad(x, kernel, cotangent) for key, grad in grads.items()}
    differences = {}
    for index, name in ((0, "input"), (1, "kernel")):
        new, old = (np.asarray(results[key][1][index]) for key in ("custom_vjp", "autodiff"))
        differences[name] = float(np.abs(new - old).max() / np.abs(old).max())
    jitted_forward = jax.jit(forward)
    runs = {"forward": lambda: jitted_forward(x, kernel).block_until_ready()}
    for key, grad in grads.items():
        runs[key] = lambda grad=grad: jax.block_until_ready(grad(x, kernel, cotangent))
    for run in runs.values():
        run()
    times = _bench.interleaved(runs, rounds)
    record = {"shape": list(shape), "kernel_size": kernel_size, "stride": stride,
              "padding": padding, "max_gradient_difference_of_scale": differences,
              "seconds": {key: _bench.spread(t) for key, t in times.items()},
              "custom_vjp_over_autodiff": _bench.ratio(times["custom_vjp"], times["autodiff"]),
              "autodiff_over_forward": _bench.ratio(times["autodiff"], times["forward"]),
              "custom_vjp_over_forward": _bench.ratio(times["custom_vjp"], times["forward"])}
    print(shape, kernel_size, stride, {key: round(float(np.median(t)) * 1e3, 1)
                                       for key, t in times.items()}, "ms;",
          "custom_vjp / autodiff", record["custom_vjp_over_autodiff"]["of_medians"],
          differences, flush=True)
    return record


def model(name, batch, size, rounds):
    shape = (size, size, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 1000, size=batch).astype("int64")
    models = {"autodiff": kcnn.create_model(name, input_shape=shape, classifier_activation=None)}
    models["custom_vjp"] = keras.models.clone_model(models["autodiff"])
    models["custom_vjp"].set_weights(models["autodiff"].get_weights())
    runs, first, losses = {}, {}, {}
    for key, twin in models.items():
        twin.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        step = _with_backward(key == "custom_vjp", lambda twin=twin: twin.train_on_batch(x, y))
        first[key], _ = _bench.warm_up(step, 1, steps=1)
        losses[key] = float(step())
        runs[key] = step
    times = _bench.interleaved(runs, rounds)
    record = {"first_call_s": first, "second_step_loss": losses,
              "seconds": {key: _bench.spread(t) for key, t in times.items()},
              "custom_vjp_over_autodiff": _bench.ratio(times["custom_vjp"], times["autodiff"])}
    print(name, "train step", {key: round(float(np.median(t)), 3) for key, t in times.items()},
          "s; custom_vjp / autodiff", record["custom_vjp_over_autodiff"]["of_medians"],
          "losses", losses, flush=True)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["mobilenet_v2", "efficientnet_b0"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--layer-rounds", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=_bench.RESULTS)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("depthwise_jax.py measures the JAX backend: run it with KERAS_BACKEND=jax")
    record = {"batch_size": args.batch_size, "image_size": args.image_size,
              "layer_rounds": args.layer_rounds, "rounds": args.rounds,
              "layers": [layer(*spec, args.layer_rounds) for spec in LAYERS],
              "models": {}}
    for name in args.models:
        record["models"][name] = model(name, args.batch_size, args.image_size, args.rounds)
    _bench.save(record, args.out, "depthwise_jax", args.no_save)


if __name__ == "__main__":
    main()
