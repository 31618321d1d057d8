"""What the padding layers cost: kcnn's builders as built against the same model
with each pad done inside its convolution or pool (the issue's lever "Padding
layers on TensorFlow and torch").

    KERAS_BACKEND=torch .venv/bin/python benchmarks/layers.py [--models resnet50 mobilenet_v2]
        [--batch-size 16] [--image-size 224] [--rounds 5] [--threads 2]

kcnn builds torch's symmetric `Conv2d(padding=p)` / `MaxPool2d(padding=p)` as
`ZeroPadding2D(p)` + a "valid" layer wherever Keras's "same" would pad
differently (stems, stride-2 convolutions and pools; `kcnn.models.blocks`).
The contenders, one process, the same weights, timed in interleaved rounds
(`_bench.interleaved`) after a warm-up:

- "kcnn": the model as built;
- "pad_inside": a clone in which each `{name}_pad` layer is an `Identity` and
  the layer `{name}` pads inside its kernel: `tf.nn.conv2d` /
  `tf.nn.depthwise_conv2d` / `tf.nn.max_pool2d` with explicit paddings on
  TensorFlow; on torch `torch.nn.functional.conv2d(padding=p)` /
  `max_pool2d(padding=p)` through the same layout steps as Keras's own torch
  convolution (so only the pad differs); on JAX `lax.conv_general_dilated`
  with explicit padding (depthwise: kcnn's sliced form of the padded input).
- on torch also "direct": every convolution (padded or not) as
  `torch.nn.functional.conv2d` on the channels_last tensor viewed as NCHW
  (which is torch's channels_last memory format, no copy), with the pad
  inside; Keras's torch convolution copies its input twice for channels_last
  (`.contiguous()` to NCHW, then back to the channels_last memory format).

A training step is `train_on_batch` (SGD with momentum, sparse cross-entropy
from logits), an inference step `predict_on_batch`, as in
benchmarks/throughput.py. Writes results/layers_<backend>.json: per model,
mode and contender the seconds per step of every round and their spread, and
each contender's median ratio to "kcnn" (time; below 1 is faster) with the
spread of the per-round ratios.
"""

import kcnn  # noqa: I001  (before TensorFlow and torch: it orders triton, keras, TF)
import argparse
import os
import time

import keras
import numpy as np

import _bench
from kcnn.layers.conv import depthwise_conv

BACKEND = keras.backend.backend()


def _pad_of(layer):
    (top, bottom), (left, right) = layer.padding
    if not top == bottom == left == right:
        raise ValueError(f"{layer.name}: not a symmetric pad: {layer.padding}")
    return top


def _conv_inside(inputs, kernel, strides, pad, depthwise, data_format):
    """A "valid" convolution of `inputs` zero-padded by `pad` on each side, the pad
    inside the backend's own convolution."""
    kernel = keras.ops.convert_to_tensor(kernel)
    last = data_format == "channels_last"
    if BACKEND == "tensorflow":
        import tensorflow as tf

        pads = [[0, 0], [pad, pad], [pad, pad], [0, 0]] if last else \
            [[0, 0], [0, 0], [pad, pad], [pad, pad]]
        fmt = "NHWC" if last else "NCHW"
        if depthwise:
            return tf.nn.depthwise_conv2d(inputs, kernel, (1,) + strides + (1,), pads,
                                          data_format=fmt)
        return tf.nn.conv2d(inputs, kernel, strides, pads, data_format=fmt)
    if BACKEND == "jax":
        import jax

        if depthwise:  # XLA's own depthwise convolution is the slow one: kcnn's slices
            pads = [(0, 0), (pad, pad), (pad, pad), (0, 0)] if last else \
                [(0, 0), (0, 0), (pad, pad), (pad, pad)]
            return depthwise_conv(keras.ops.pad(inputs, pads), kernel, strides=strides,
                                  data_format=data_format)
        dims = ("NHWC", "HWIO", "NHWC") if last else ("NCHW", "HWIO", "NCHW")
        groups = inputs.shape[-1 if last else 1] // kernel.shape[2]
        return jax.lax.conv_general_dilated(inputs, kernel, strides, [(pad, pad)] * 2,
                                            dimension_numbers=dims,
                                            feature_group_count=groups)
    import torch.nn.functional as F
    from keras.src.backend.torch import nn as knn

    if depthwise:
        kh, kw, c, m = kernel.shape
        kernel = kernel.reshape(kh, kw, 1, c * m)
    # Keras's torch convolution, step for step, with the pad inside.
    if last:
        inputs = knn._transpose_spatial_inputs(inputs)
    kernel = knn._transpose_conv_kernel(kernel)
    if last:
        inputs = knn._maybe_convert_to_channels_last(inputs)
        kernel = knn._maybe_convert_to_channels_last(kernel)
    groups = inputs.shape[1] // kernel.shape[1]
    out = F.conv2d(inputs, kernel, stride=strides, padding=pad, groups=groups)
    return knn._transpose_spatial_outputs(out) if last else out


def _conv_direct(inputs, kernel, strides, pad, depthwise, data_format):
    """torch only: F.conv2d on the NHWC tensor viewed as NCHW (no copies)."""
    import torch.nn.functional as F

    kernel = keras.ops.convert_to_tensor(kernel)
    if depthwise:
        kh, kw, c, m = kernel.shape
        kernel = kernel.reshape(kh, kw, 1, c * m)
    last = data_format == "channels_last"
    x = inputs.permute(0, 3, 1, 2) if last else inputs
    w = kernel.permute(3, 2, 0, 1)
    groups = x.shape[1] // w.shape[1]
    out = F.conv2d(x, w, stride=strides, padding=pad, groups=groups)
    return out.permute(0, 2, 3, 1) if last else out


def _pool_inside(inputs, pool_size, strides, pad, data_format):
    """Max pool of `inputs` padded by `pad` on each side (inputs >= 0 in the builders,
    so a pad with -inf, as these kernels do, is a pad with zeros)."""
    last = data_format == "channels_last"
    if BACKEND == "tensorflow":
        import tensorflow as tf

        pads = [[0, 0], [pad, pad], [pad, pad], [0, 0]] if last else \
            [[0, 0], [0, 0], [pad, pad], [pad, pad]]
        return tf.nn.max_pool2d(inputs, pool_size, strides, pads,
                                data_format="NHWC" if last else "NCHW")
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        window = (1,) + pool_size + (1,) if last else (1, 1) + pool_size
        step = (1,) + strides + (1,) if last else (1, 1) + strides
        pads = [(0, 0), (pad, pad), (pad, pad), (0, 0)] if last else \
            [(0, 0), (0, 0), (pad, pad), (pad, pad)]
        return jax.lax.reduce_window(inputs, -jnp.inf, jax.lax.max, window, step, pads)
    import torch.nn.functional as F

    x = inputs.permute(0, 3, 1, 2) if last else inputs
    out = F.max_pool2d(x, pool_size, strides, padding=pad)
    return out.permute(0, 2, 3, 1) if last else out


def _padded(layer, shape):
    """The input shape of the layer's "valid" op: `shape` with the pad added."""
    shape = list(shape)
    axes = (1, 2) if layer.data_format == "channels_last" else (2, 3)
    for axis in axes:
        if shape[axis] is not None:
            shape[axis] += 2 * layer.pad
    return tuple(shape)


class _Conv(keras.layers.Conv2D):
    pad, op = 0, None

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(_padded(self, input_shape))

    def convolution_op(self, inputs, kernel):
        return self.op(inputs, kernel, tuple(self.strides), self.pad, False,
                       self.data_format)


class _Depthwise(kcnn.layers.DepthwiseConv2D):
    pad, op = 0, None

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(_padded(self, input_shape))

    def call(self, inputs):
        out = self.op(inputs, self.kernel, tuple(self.strides), self.pad, True,
                      self.data_format)
        if self.use_bias:
            shape = (1, 1, 1, -1) if self.data_format == "channels_last" else (1, -1, 1, 1)
            out = out + keras.ops.reshape(self.bias, shape)
        return self.activation(out) if self.activation is not None else out


class _Pool(keras.layers.MaxPooling2D):
    pad = 0

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(_padded(self, input_shape))

    def call(self, inputs):
        return _pool_inside(inputs, tuple(self.pool_size), tuple(self.strides), self.pad,
                            self.data_format)


def variant(model, op, everywhere=False):
    """A clone of `model`, same weights, whose `{name}_pad` layers are done inside
    layer `{name}` by `op`; with `everywhere`, every convolution runs through `op`."""
    pads = {layer.name[:-len("_pad")]: _pad_of(layer) for layer in model.layers
            if isinstance(layer, keras.layers.ZeroPadding2D) and layer.name.endswith("_pad")}

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.ZeroPadding2D) and layer.name.endswith("_pad"):
            return keras.layers.Identity(name=layer.name)
        if layer.name not in pads and not everywhere:
            return layer.__class__.from_config(config)
        kinds = ((keras.layers.DepthwiseConv2D, _Depthwise), (keras.layers.Conv2D, _Conv),
                 (keras.layers.MaxPooling2D, _Pool))
        for base, cls in kinds:
            if isinstance(layer, base):
                if layer.name in pads and config["padding"] != "valid":
                    raise ValueError(f"{layer.name}: a pad before a {config['padding']!r} layer")
                if layer.name not in pads and config["padding"] != "valid":
                    if isinstance(layer, keras.layers.MaxPooling2D):
                        return layer.__class__.from_config(config)
                    # "same" at stride 1 with an odd kernel: a symmetric pad.
                    pad = layer.kernel_size[0] // 2
                    config["padding"] = "valid"
                else:
                    pad = pads.get(layer.name, 0)
                new = cls.from_config(config)
                new.pad = pad
                if cls is not _Pool:
                    new.op = op
                return new
        if layer.name in pads:
            raise ValueError(f"{layer.name}: a pad before a {type(layer).__name__}")
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def steps(model, x, y):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return {"train": lambda: model.train_on_batch(x, y),
            "infer": lambda: model.predict_on_batch(x)}


def run(name, batch, size, rounds):
    shape = (size, size, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 1000, size=batch).astype("int64")
    model = kcnn.create_model(name, input_shape=shape, classifier_activation=None)
    contenders = {"kcnn": model, "pad_inside": variant(model, _conv_inside)}
    if BACKEND == "torch":
        contenders["direct"] = variant(model, _conv_direct, everywhere=True)
    pad_layers = sum(isinstance(layer, keras.layers.ZeroPadding2D) for layer in model.layers)
    reference = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    errors = {}
    for key, twin in contenders.items():
        out = keras.ops.convert_to_numpy(twin.predict_on_batch(x))
        errors[key] = float(np.abs(out - reference).max() / np.abs(reference).max())
    print(name, "max error of scale", errors, flush=True)
    fns = {key: steps(m, x, y) for key, m in contenders.items()}
    record = {"pad_layers": pad_layers, "max_error_of_scale": errors, "modes": {}}
    for mode in ("train", "infer"):
        runs = {key: fn[mode] for key, fn in fns.items()}
        first = {}
        for key, step in runs.items():
            start = time.perf_counter()
            step()
            first[key] = time.perf_counter() - start
            step()
        times = _bench.interleaved(runs, rounds)
        record["modes"][mode] = {
            "first_call_s": first,
            "seconds": {key: _bench.spread(t) for key, t in times.items()},
            "ratio_to_kcnn": {key: _bench.ratio(t, times["kcnn"]) for key, t in times.items()
                              if key != "kcnn"},
        }
        print(name, mode, {key: round(float(np.median(t)), 3) for key, t in times.items()},
              {key: v["of_medians"] for key, v in record["modes"][mode]["ratio_to_kcnn"].items()},
              flush=True)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default=_bench.RESULTS)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    threads = _bench.pin_threads(args.threads)
    record = {"backend": BACKEND, "threads": threads, "batch_size": args.batch_size,
              "image_size": args.image_size, "rounds": args.rounds,
              "load_at_start": list(os.getloadavg()), "models": {}}
    for name in args.models:
        record["models"][name] = run(name, args.batch_size, args.image_size, args.rounds)
    record["load_at_end"] = list(os.getloadavg())
    _bench.save(record, args.out, f"layers_{BACKEND}", args.no_save)


if __name__ == "__main__":
    main()
