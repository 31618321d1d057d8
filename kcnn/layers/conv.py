"""2D convolutions (plain, grouped, depthwise) that are fast on every backend."""

__all__ = ["Conv2D", "DepthwiseConv2D", "GroupedConv2D"]

import functools

import keras
from keras import ops

from kcnn.layers import inplace

# The one place that picks the formulation: backends whose own grouped
# convolution is the fast one on CPU. TensorFlow (which runs grouped
# convolutions through XLA on CPU) and JAX are several times slower with
# groups=2 than with the split form, and far slower with many groups; torch is
# faster natively. The measurements are in benchmarks/README.md.
_NATIVE_GROUPS_BACKENDS = ("torch",)

# Backends on which a 1x1 convolution runs as a matrix multiply over the
# channels. XLA's CPU backend computes a convolution's weight gradient over
# activations transposed to (C, H, W, N), recomputing the batch norm and ReLU
# before it inside the transpose; a matmul's weight gradient is one GEMM over
# N*H*W. ResNet-50 trains 1.5-1.6x and infers 1.1x faster on JAX (b16, 224;
# benchmarks/profile_jax.py --pointwise-ab). TensorFlow and torch keep their
# convolution.
_POINTWISE_MATMUL_BACKENDS = ("jax",)

# Backends on which convolutions (plain, grouped, depthwise) call the backend's
# own kernel on a channels-first VIEW of channels-last activations. Keras's
# torch backend makes the (N, C, H, W) copy of the input and then a second
# copy back into torch's channels_last memory format for every convolution;
# the permuted view already is that format, so kcnn copies nothing
# (benchmarks/results/conv_torch.json). Channels-first models take the same
# path without a permute.
_VIEW_CONV_BACKENDS = ("torch",)


def _two(value):
    """An int or a pair (strides, dilation_rate) as a (rows, cols) tuple."""
    return (value, value) if isinstance(value, int) else tuple(value)


def grouped_conv(inputs, kernel, groups, *, strides=1, padding="valid",
                 data_format=None, dilation_rate=1, native=None, bias=None):
    """`ops.conv` with `groups` groups, natively or as split-and-concatenate.

    `kernel` has Conv2D's grouped layout, (kh, kw, in_channels // groups,
    filters): group g sees input channels [g * in/groups, (g + 1) * in/groups)
    and makes filters [g * filters/groups, (g + 1) * filters/groups). Both forms
    compute exactly that. `native=None` picks the fast form for this backend.
    `padding`: "valid", "same", or torch's symmetric zero padding (an int or
    (rows, cols); `explicit_padding`). `bias` (filters,), if given, is added.
    """
    if data_format is None:
        data_format = keras.config.image_data_format()
    if keras.backend.backend() in _VIEW_CONV_BACKENDS and native is not False:
        return _torch_conv(inputs, kernel, groups, strides=strides, padding=padding,
                           data_format=data_format, dilation_rate=dilation_rate,
                           bias=bias)
    inputs, padding = _pad_explicitly(inputs, padding, data_format)
    outputs = _grouped_conv(inputs, kernel, groups, strides=strides, padding=padding,
                            data_format=data_format, dilation_rate=dilation_rate,
                            native=native)
    return _add_bias(outputs, bias, data_format)


def _add_bias(outputs, bias, data_format):
    """`outputs` plus the per-channel `bias` (None: none), where torch's kernel did not add it."""
    if bias is None:
        return outputs
    shape = (1, 1, 1, -1) if data_format == "channels_last" else (1, -1, 1, 1)
    return ops.add(outputs, ops.reshape(bias, shape))


def explicit_padding(padding):
    """torch's symmetric zero padding `(rows, cols)` given as an int or a pair of
    ints; None for Keras's "valid" and "same"."""
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return None
    pair = (_two(padding) if isinstance(padding, int)
            else tuple(padding) if isinstance(padding, (tuple, list)) and len(padding) == 2
            else None)
    if pair is None or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                               for p in pair):  # also any other string
        raise ValueError(f"padding must be 'valid', 'same', or torch's symmetric zero "
                         f"padding as a non-negative int or a pair of them; received "
                         f"padding={padding!r}.")
    return tuple(pair)


def _pad_explicitly(inputs, padding, data_format):
    """(inputs, "valid") with torch's explicit `padding` applied; else as given.

    XLA folds the pad into the convolution that reads it; TensorFlow's own
    explicit-padding convolution was no faster than a pad first
    (benchmarks/results/layers_tensorflow.json).
    """
    pair = explicit_padding(padding)
    if pair is None:
        return inputs, padding
    if pair == (0, 0):
        return inputs, "valid"
    (ph, pw), zero = pair, [0, 0]
    pads = ([zero, [ph, ph], [pw, pw], zero] if data_format == "channels_last"
            else [zero, zero, [ph, ph], [pw, pw]])
    return ops.pad(inputs, pads), "valid"


def _grouped_conv(inputs, kernel, groups, *, strides, padding, data_format,
                  dilation_rate, native):
    if (groups == 1 and tuple(kernel.shape[:2]) == (1, 1) and _two(dilation_rate) == (1, 1)
            and keras.backend.backend() in _POINTWISE_MATMUL_BACKENDS):
        return pointwise_conv(inputs, kernel, strides=_two(strides), data_format=data_format)
    if native is None:
        native = keras.backend.backend() in _NATIVE_GROUPS_BACKENDS
    conv_args = dict(strides=strides, padding=padding, data_format=data_format,
                     dilation_rate=dilation_rate)
    if groups == 1 or native:
        return ops.conv(inputs, kernel, **conv_args)
    axis = -1 if data_format == "channels_last" else 1
    parts = zip(ops.split(inputs, groups, axis=axis),
                ops.split(kernel, groups, axis=-1))
    return ops.concatenate([ops.conv(x, k, **conv_args) for x, k in parts],
                           axis=axis)


def _torch_conv(inputs, kernel, groups, *, strides, padding, data_format,
                dilation_rate, depthwise=False, bias=None):
    """torch's convolution on a (N, C, H, W) view of channels-last inputs.

    `kernel` in Keras's layout: Conv2D's (kh, kw, in // groups, out), or with
    `depthwise=True` DepthwiseConv2D's (kh, kw, channels, multiplier), whose
    output channel c * multiplier + j is torch's grouped channel of the same
    index. "same" pads as Keras does (the odd pixel after): inside the
    convolution where both sides are equal, else with one pad first. torch's
    explicit padding (`explicit_padding`) and `bias` go inside the
    convolution: a separate pad, or bias add, writes the whole activation
    once more (with pad layers MobileNetV2 inferred in 1.10x the time on
    torch; benchmarks/results/layers_torch.json).
    """
    import torch.nn.functional as F

    x = ops.convert_to_tensor(inputs)
    kernel = ops.convert_to_tensor(kernel)
    last = data_format == "channels_last"
    if last:
        x = x.permute(0, 3, 1, 2)  # a view, in torch's channels_last memory format
    kh, kw = kernel.shape[:2]
    weight = _torch_weight(kernel, depthwise, last)
    if depthwise:
        groups = kernel.shape[2]
    strides, dilation = _two(strides), _two(dilation_rate)
    pad = explicit_padding(padding) or (0, 0)
    if isinstance(padding, str) and padding.lower() == "same":
        sides = [_same_padding(x.shape[2 + i], (k - 1) * dilation[i] + 1, strides[i])
                 for i, k in enumerate((kh, kw))]
        if all(before == after for before, after in sides):
            pad = (sides[0][0], sides[1][0])
        else:
            (top, bottom), (left, right) = sides
            x = F.pad(x, (left, right, top, bottom))
    if bias is not None:
        bias = ops.convert_to_tensor(bias)
    y = F.conv2d(x, weight, bias, stride=strides, padding=pad, dilation=dilation,
                 groups=groups)
    return y.permute(0, 2, 3, 1) if last else y


def _torch_weight(kernel, depthwise, channels_last):
    """torch's (out, in // groups, kh, kw) weight of a Keras kernel, kept while it is unchanged.

    For channels-last inputs the weight goes in torch's channels_last memory
    format, which its CPU convolution would otherwise make itself: a copy of
    every kernel on every call, 9% of ResNet-50's inference step on torch
    (profiled: `aten::clone` of each kernel, 74 ms of 850; 1.02-1.06x the
    time in benchmarks/results/graph_run_torch.json). Without autograd
    (inference, `predict`) the copy is made once and kept on the kernel
    tensor, with the tensor's version counter, which every assignment and
    optimizer step increments: a changed kernel is copied again. With
    autograd on, the copy must be part of the graph, and is made each call;
    under torch.compile or torch.export the traced program makes its own.
    """
    import torch

    cacheable = (not torch.is_grad_enabled() and not inplace.tracing()
                 and type(kernel) in (torch.Tensor, torch.nn.Parameter))
    key = None
    if cacheable:
        try:
            key = (kernel._version, depthwise, channels_last)
        except RuntimeError:  # an inference-mode tensor has no version counter
            key = None
        cached = getattr(kernel, "_kcnn_torch_weight", None)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
    kh, kw = kernel.shape[:2]
    if depthwise:
        channels, multiplier = kernel.shape[2:]
        weight = kernel.permute(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
    else:
        weight = kernel.permute(3, 2, 0, 1)
    if channels_last:
        weight = weight.contiguous(memory_format=torch.channels_last)
    if key is not None:
        kernel._kcnn_torch_weight = (key, weight)
    return weight


def pointwise_conv(inputs, kernel, *, strides=(1, 1), data_format=None):
    """A 1x1 convolution (one group, no dilation) as a strided slice and a matmul.

    "same" and "valid" padding agree for a 1x1 kernel, so padding does not enter.
    """
    if data_format is None:
        data_format = keras.config.image_data_format()
    sh, sw = strides
    inputs = ops.convert_to_tensor(inputs)
    weights = ops.reshape(kernel, kernel.shape[2:])
    if data_format == "channels_last":
        return ops.matmul(inputs[:, ::sh, ::sw, :], weights)
    return ops.einsum("bchw,co->bohw", inputs[:, :, ::sh, ::sw], weights)


class _TorchPadding:
    """`padding` also as torch's `Conv2d(padding=p)`: an int or a (rows, cols) pair.

    That many zeros on each side of the input, before a "valid" convolution,
    which is what torchvision's stems and stride-2 layers do and what Keras's
    "same" does not (at stride 2 it pads after only). Keras's convolutions take
    "valid" and "same" only, so kcnn's builders used to put a ZeroPadding2D
    layer before such a convolution; on torch that pad is one more copy of the
    activation, forward and backward. Here the pad goes inside torch's
    convolution; on TensorFlow and JAX it is the same pad as the layer's,
    made inside this one (XLA folds it into the convolution). `layer.padding`
    is then the pair, and the config holds it; "valid" and "same" are Keras's,
    unchanged.
    """

    _padding_position = None  # `padding`'s index among the positional arguments

    def __init__(self, *args, **kwargs):
        args = list(args)
        positional = len(args) > self._padding_position
        padding = args[self._padding_position] if positional else kwargs.get("padding",
                                                                              "valid")
        pair = explicit_padding(padding)
        if pair is not None:
            if positional:
                args[self._padding_position] = "valid"
            else:
                kwargs["padding"] = "valid"
        super().__init__(*args, **kwargs)
        if pair is not None:
            self.padding = pair

    def compute_output_shape(self, input_shape):
        if isinstance(self.padding, str):
            return super().compute_output_shape(input_shape)
        shape = list(input_shape)
        first = 1 if self.data_format == "channels_last" else 2
        for i, pad in enumerate(self.padding):
            if shape[first + i] is not None:
                shape[first + i] += 2 * pad
        pair, self.padding = self.padding, "valid"
        try:
            return super().compute_output_shape(tuple(shape))
        finally:
            self.padding = pair

    def get_config(self):
        config = super().get_config()
        if not isinstance(self.padding, str):
            config["padding"] = list(self.padding)
        return config


@keras.saving.register_keras_serializable(package="kcnn")
class Conv2D(_TorchPadding, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose computation is the fast one on every backend.

    The same arguments, weights, config and outputs as Keras's layer (a file
    saved with Keras's layer loads as Keras's layer, unchanged); only the
    formulation is picked per backend by `grouped_conv`: 1x1 convolutions as
    a matrix multiply on JAX (`_POINTWISE_MATMUL_BACKENDS`), grouped ones as
    split-and-concatenate where the backend's grouped convolution is slow
    (`_NATIVE_GROUPS_BACKENDS`), Keras's own convolution otherwise; on torch
    the bias is added inside the convolution. `padding` also takes torch's
    symmetric zero padding (`_TorchPadding`). Outputs and gradients agree
    with Keras's layer within float32 rounding (`tests/layers/test_conv.py`).
    """

    _padding_position = 3  # Conv2D(filters, kernel_size, strides, padding, ...)

    def convolution_op(self, inputs, kernel, bias=None):
        return grouped_conv(inputs, kernel, self.groups,
                            strides=list(self.strides), padding=self.padding,
                            data_format=self.data_format,
                            dilation_rate=self.dilation_rate, bias=bias)

    def call(self, inputs):
        # Keras's `call`, with the bias handed to the convolution (torch adds
        # it in its kernel; `grouped_conv` adds it after elsewhere).
        outputs = self.convolution_op(inputs, self.kernel,
                                      bias=self.bias if self.use_bias else None)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="kcnn")
class GroupedConv2D(Conv2D):
    """`keras.layers.Conv2D` whose grouped convolution runs fast on every backend.

    The same arguments, weights (one kernel of shape (kh, kw, in_channels //
    groups, filters) and one bias) and outputs as `Conv2D(groups=groups)`, so
    parameter counts, weight files and `.keras` files do not depend on the
    backend. Only the computation differs: on TensorFlow and JAX the groups run
    as separate convolutions on the channel slices, concatenated; on torch as
    torch's native grouped convolution. On CPU each backend's choice trains
    faster than the other form, by a wide margin on TensorFlow and JAX, more
    so as the groups grow (training-step times of both forms on each backend:
    benchmarks/README.md). Outputs of the two forms agree within 1e-5. The
    same computation as kcnn's `Conv2D`, under the name its files carry.
    """


# Backends on which a depthwise convolution runs fastest as a sum of shifted,
# strided slices of the input, each times its per-channel tap: XLA's CPU
# depthwise convolution (`feature_group_count=C`) is many times slower than the
# loop XLA fuses the slices into, while TensorFlow's and torch's own depthwise
# kernels beat nine separate multiply-adds (benchmarks/README.md).
_SLICED_DEPTHWISE_BACKENDS = ("jax",)


def _same_padding(size, kernel, stride):
    """Keras's (TensorFlow's) "same" padding of one axis: (before, after), extra after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def depthwise_conv(inputs, kernel, *, strides=1, padding="valid", data_format=None,
                   dilation_rate=1, sliced=None, bias=None):
    """`ops.depthwise_conv`, natively or as a sum of shifted strided slices.

    `kernel` has DepthwiseConv2D's layout (kh, kw, channels, depth_multiplier);
    output channel c * depth_multiplier + j is input channel c times tap
    kernel[..., c, j], as in Keras. `sliced=None` picks the fast form for this
    backend (JAX, without dilation). `padding` and `bias` as in `grouped_conv`.
    """
    if data_format is None:
        data_format = keras.config.image_data_format()
    strides, dilation = _two(strides), _two(dilation_rate)
    if sliced is None:
        sliced = (keras.backend.backend() in _SLICED_DEPTHWISE_BACKENDS
                  and dilation == (1, 1))
    if not sliced:
        if keras.backend.backend() in _VIEW_CONV_BACKENDS:
            return _torch_conv(inputs, kernel, 1, strides=strides, padding=padding,
                               data_format=data_format, dilation_rate=dilation,
                               depthwise=True, bias=bias)
        inputs, padding = _pad_explicitly(inputs, padding, data_format)
        outputs = ops.depthwise_conv(inputs, kernel, strides=strides, padding=padding,
                                     data_format=data_format, dilation_rate=dilation)
        return _add_bias(outputs, bias, data_format)
    if dilation != (1, 1):
        raise ValueError(f"the sliced depthwise convolution takes no dilation; "
                         f"received dilation_rate={dilation_rate}.")
    inputs, padding = _pad_explicitly(inputs, padding, data_format)
    outputs = _sliced_depthwise(inputs, kernel, strides, padding.lower(), data_format)
    return _add_bias(outputs, bias, data_format)


def _sliced_depthwise(x, kernel, strides, padding, data_format):
    kh, kw, channels, multiplier = kernel.shape
    x = ops.convert_to_tensor(x)
    last = data_format == "channels_last"
    rows, cols = (1, 2) if last else (2, 3)
    axis = 3 if last else 1
    if multiplier > 1:  # channel c * m + j holds input channel c
        x = ops.repeat(x, multiplier, axis=axis)
    taps = ops.reshape(kernel, (kh, kw, channels * multiplier))
    if padding == "same":
        pads = [[0, 0]] * 4
        pads[rows] = list(_same_padding(x.shape[rows], kh, strides[0]))
        pads[cols] = list(_same_padding(x.shape[cols], kw, strides[1]))
        x = ops.pad(x, pads)
    if keras.backend.backend() == "jax" and _DEPTHWISE_VJP:
        return _jax_tap_sum()(x, taps, tuple(strides), last)
    return _tap_sum(x, taps, strides, last)


# On JAX the sum of slices has its own backward (`_jax_tap_sum`); False gives
# autodiff's, for benchmarks/depthwise_jax.py and the tests.
_DEPTHWISE_VJP = True


def _shifted_slices(x, kernel_size, strides, last, out_size):
    """(i, j, the strided slice of the padded input `x` that meets tap (i, j))."""
    rows, cols = (1, 2) if last else (2, 3)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            index = [slice(None)] * 4
            index[rows] = slice(i, i + (out_size[0] - 1) * strides[0] + 1, strides[0])
            index[cols] = slice(j, j + (out_size[1] - 1) * strides[1] + 1, strides[1])
            yield i, j, x[tuple(index)]


def _tap_sum(x, taps, strides, last):
    """The "valid" depthwise convolution of the padded (and repeated) input `x`
    with `taps` (kh, kw, channels): the kh * kw products of a strided slice and
    its per-channel tap, summed."""
    kh, kw = taps.shape[:2]
    rows, cols = (1, 2) if last else (2, 3)
    out_size = ((x.shape[rows] - kh) // strides[0] + 1, (x.shape[cols] - kw) // strides[1] + 1)
    tap_shape = (1, 1, 1, -1) if last else (1, -1, 1, 1)
    total = None
    for i, j, window in _shifted_slices(x, (kh, kw), strides, last, out_size):
        term = window * ops.reshape(taps[i, j], tap_shape)
        total = term if total is None else total + term
    return total


def _halving_sum(products, last):
    """Per-channel sums of `products` (one tap's slice times the output gradient).

    Autodiff reduces each tap's product over (N, H, W) in one reduction, and
    XLA's CPU backend first copies the strided slice out for it: the kernel
    gradient took 15-40x the forward. Adding the two halves of the batch
    axis until one image is left is an element-wise loop that reads the slice
    in place, and leaves a reduction N times smaller: a layer's forward and
    backward in 0.3-0.75x the time at MobileNetV2's and EfficientNet-B0's
    shapes, their batch-16 training steps in 0.89x and 0.86x
    (benchmarks/results/depthwise_jax.json; an earlier, busier run 0.87x and
    0.70x). The sums run in float32, also for float16 and bfloat16 inputs.
    """
    import jax.numpy as jnp

    products = products.astype(jnp.float32)
    # A symbolic batch (jax2tf's polymorphic export of a SavedModel) has no
    # halves to take: one reduction, as autodiff's.
    while isinstance(products.shape[0], int) and products.shape[0] > 1:
        half = products.shape[0] // 2
        total = products[:half] + products[half:2 * half]
        if products.shape[0] % 2:
            total = jnp.concatenate([total, products[2 * half:]], axis=0)
        products = total
    return jnp.sum(products, axis=(0, 1, 2) if last else (0, 2, 3))


@functools.cache
def _jax_tap_sum():
    """`_tap_sum` as a `jax.custom_vjp`, built on first use (JAX is imported only there).

    The input gradient is autodiff's own (the transposed slices, which XLA
    fuses into one loop); the kernel gradient sums each tap's products by
    halving (`_halving_sum`). Reverse mode only, which is what Keras's
    trainers use.
    """
    import jax

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
    def tap_sum(x, taps, strides, last):
        return _tap_sum(x, taps, strides, last)

    def forward(x, taps, strides, last):
        return _tap_sum(x, taps, strides, last), (x, taps)

    def backward(strides, last, saved, grad):
        x, taps = saved
        _, transpose = jax.vjp(lambda x: _tap_sum(x, taps, strides, last), x)
        kh, kw = taps.shape[:2]
        out_size = grad.shape[1:3] if last else grad.shape[2:4]
        tap_grads = [_halving_sum(window * grad, last)
                     for _, _, window in _shifted_slices(x, (kh, kw), strides, last, out_size)]
        taps_grad = jax.numpy.stack(tap_grads).reshape(taps.shape).astype(taps.dtype)
        return transpose(grad)[0], taps_grad

    tap_sum.defvjp(forward, backward)
    return tap_sum


@keras.saving.register_keras_serializable(package="kcnn")
class DepthwiseConv2D(_TorchPadding, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` that runs fast on every backend.

    The same arguments, weights (kernel (kh, kw, channels, depth_multiplier),
    bias), config and outputs as Keras's layer, so weight files, torchvision
    conversions and `.keras` files do not depend on the backend (a file saved
    with Keras's layer loads as Keras's layer, unchanged). Only the
    computation differs: on JAX the convolution is the sum of kh * kw shifted,
    strided slices of the padded input, each times its per-channel tap, which
    XLA fuses into one loop, several times faster than XLA's own CPU depthwise
    convolution forward and backward (measurements: benchmarks/README.md);
    Its backward on JAX is a custom VJP whose kernel gradient sums each tap's
    products by halving the batch (`_halving_sum`), 0.86-0.89x of MobileNetV2's
    and EfficientNet-B0's training step (benchmarks/results/depthwise_jax.json).
    TensorFlow and torch keep their own kernels, which are the fast ones there.
    `padding` also takes torch's symmetric zero padding (`_TorchPadding`).
    Outputs and gradients of both forms agree within float32 rounding
    (`tests/layers/test_depthwise.py`).
    """

    _padding_position = 2  # DepthwiseConv2D(kernel_size, strides, padding, ...)
    _sliced = None  # None: the backend's fast form (`depthwise_conv`); tests force one

    def call(self, inputs):
        outputs = depthwise_conv(inputs, self.kernel, strides=self.strides,
                                 padding=self.padding, data_format=self.data_format,
                                 dilation_rate=self.dilation_rate, sliced=self._sliced,
                                 bias=self.bias if self.use_bias else None)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs
