"""Pooling with torch's semantics: max pooling with its padding and ceil mode,
adaptive average pooling at every input size."""

__all__ = ["AdaptiveAveragePooling2D", "MaxPooling2D", "TorchMaxPooling2D"]

import numpy as np

import keras
from keras import ops


# Backends whose max pooling runs on a channels-first VIEW of channels-last
# activations: Keras's torch pooling copies its input to (N, C, H, W) first;
# the permuted view is torch's channels_last memory format, which
# `max_pool2d` takes as it is (see `kcnn.layers.conv._VIEW_CONV_BACKENDS`).
_VIEW_POOL_BACKENDS = ("torch",)


def max_pool(inputs, pool_size, strides, data_format):
    """A "valid" max pool: `ops.max_pool`, or torch's on a view of the input."""
    if keras.backend.backend() not in _VIEW_POOL_BACKENDS:
        return ops.max_pool(inputs, pool_size, strides, padding="valid",
                            data_format=data_format)
    return _torch_max_pool(inputs, pool_size, strides, data_format)


def _torch_max_pool(inputs, pool_size, strides, data_format, padding=(0, 0),
                    ceil_mode=False):
    """torch's `max_pool2d` (its padding and ceil mode) on a view of the input."""
    import torch.nn.functional as F

    x = ops.convert_to_tensor(inputs)
    last = data_format == "channels_last"
    y = F.max_pool2d(x.permute(0, 3, 1, 2) if last else x, tuple(pool_size), tuple(strides),
                     padding=tuple(padding), ceil_mode=ceil_mode)
    return y.permute(0, 2, 3, 1) if last else y


@keras.saving.register_keras_serializable(package="kcnn")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """`keras.layers.MaxPooling2D`; "valid" pools run on a view on torch (`max_pool`).

    The same arguments, config and outputs as Keras's layer (a file saved with
    Keras's layer loads as Keras's layer, unchanged).
    """

    def call(self, inputs):
        if self.padding != "valid":
            return super().call(inputs)
        return max_pool(inputs, self.pool_size, self.strides, self.data_format)


@keras.saving.register_keras_serializable(package="kcnn")
class TorchMaxPooling2D(keras.layers.Layer):
    """`torch.nn.MaxPool2d(pool_size, strides, padding, ceil_mode=...)`, exactly.

    Per spatial dimension of size H, with window k, stride s and padding p
    (p <= k // 2, as torch requires), torch returns

        floor((H + 2p - k) / s) + 1                       (ceil_mode=False)
        ceil((H + 2p - k) / s) + 1, minus one if the last
        window would start at or beyond H + p             (ceil_mode=True)

    windows: ceil mode keeps a last, partial window at the bottom/right edge.
    Padding counts as -inf (it never wins the max). Keras's "same" equals this
    only for some sizes, so the layer pads explicitly: p rows of -inf before,
    and after either p (floor mode) or min(p + s - 1, k - 1) (ceil mode), then
    takes a "valid" max pool. A "valid" pool over H + p + min(p + s - 1, k - 1)
    rows gives min(ceil((H + 2p - k) / s), floor((H + p - 1) / s)) + 1 windows,
    which is torch's count above, with the correction included. The padding is
    static, so the layer works for any input size, including unknown ones. On
    torch the layer is torch's own `max_pool2d` with that padding and ceil
    mode, on a view of the input (no padded copy).

    Args:
        pool_size: window size, an int or a pair (height, width).
        strides: stride, an int or a pair; None: `pool_size` (torch's default).
        padding: implicit -inf padding on both sides, an int or a pair.
        ceil_mode: torch's `ceil_mode`.
        data_format: "channels_last" or "channels_first"; None:
            `keras.config.image_data_format()`.
    """

    def __init__(self, pool_size, strides=None, padding=0, ceil_mode=False,
                 data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size", minimum=1)
        self.strides = (self.pool_size if strides is None
                        else _pair(strides, "strides", minimum=1))
        self.padding = _pair(padding, "padding", minimum=0)
        if any(p > k // 2 for p, k in zip(self.padding, self.pool_size)):
            raise ValueError(
                f"padding must be at most half the pool size (as in torch); "
                f"received padding={padding!r} with pool_size={pool_size!r}."
            )
        if not isinstance(ceil_mode, bool):
            raise ValueError(
                f"ceil_mode must be True or False; received ceil_mode={ceil_mode!r}."
            )
        self.ceil_mode = ceil_mode
        if data_format is None:
            data_format = keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                f"data_format must be 'channels_last', 'channels_first' or None; "
                f"received data_format={data_format!r}."
            )
        self.data_format = data_format

    def call(self, inputs):
        if keras.backend.backend() in _VIEW_POOL_BACKENDS:
            return _torch_max_pool(inputs, self.pool_size, self.strides, self.data_format,
                                   self.padding, self.ceil_mode)
        spatial = [(p, self._pad_after(k, s, p)) for k, s, p in
                   zip(self.pool_size, self.strides, self.padding)]
        if any(before or after for before, after in spatial):
            widths = ([[0, 0]] + [list(w) for w in spatial] + [[0, 0]]
                      if self.data_format == "channels_last"
                      else [[0, 0], [0, 0]] + [list(w) for w in spatial])
            inputs = ops.pad(inputs, widths, constant_values=float("-inf"))
        return max_pool(inputs, self.pool_size, self.strides, self.data_format)

    def _pad_after(self, k, s, p):
        return min(p + s - 1, k - 1) if self.ceil_mode else p

    def compute_output_shape(self, input_shape):
        input_shape = list(input_shape)
        first = 1 if self.data_format == "channels_last" else 2
        for i, (k, s, p) in enumerate(zip(self.pool_size, self.strides,
                                          self.padding)):
            size = input_shape[first + i]
            if size is None:
                continue
            out = self._output_size(size, k, s, p)
            if out < 1:
                raise ValueError(
                    f"{self.name}: input of spatial size {size} is too small for "
                    f"pool_size={k}, strides={s}, padding={p} "
                    f"(ceil_mode={self.ceil_mode}); received input shape "
                    f"{tuple(input_shape)}."
                )
            input_shape[first + i] = out
        return tuple(input_shape)

    def _output_size(self, size, k, s, p):
        if not self.ceil_mode:
            return (size + 2 * p - k) // s + 1
        out = -((k - size - 2 * p) // s) + 1  # ceil((size + 2p - k) / s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size,
                "strides": self.strides, "padding": self.padding,
                "ceil_mode": self.ceil_mode, "data_format": self.data_format}


def _pair(value, name, *, minimum):
    try:
        pair = (value, value) if isinstance(value, int) else tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                 and v >= minimum for v in pair):
        raise ValueError(
            f"{name} must be an integer >= {minimum} or a pair of them; "
            f"received {name}={value!r}."
        )
    return pair


@keras.saving.register_keras_serializable(package="kcnn")
class AdaptiveAveragePooling2D(keras.layers.AdaptiveAveragePooling2D):
    """`torch.nn.AdaptiveAvgPool2d(output_size)` for every input size.

    Keras's layer with the same arguments and outputs, except that it also works
    where the input is smaller than the output (a 1x1 map pooled "up" to 6x6, as
    AlexNet's head does at small inputs): Keras's TensorFlow implementation
    fails there inside a `tf.function` ("negative dimension"). Output bin i of
    a side of n inputs into m outputs averages inputs floor(i n / m) up to
    ceil((i + 1) n / m), as torch does; the layer applies that as one (m, n)
    averaging matrix per side, so it is the same on every backend, and passes
    the input through unchanged where n == m. Needs a known height and width
    (so does Keras's on TensorFlow).
    """

    def __init__(self, output_size, data_format=None, **kwargs):
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
        if not sizes or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                            or v < 1 for v in sizes):
            raise ValueError(f"output_size must be a positive integer or (height, width); "
                             f"received output_size={output_size!r}.")
        super().__init__(output_size, data_format=data_format, **kwargs)

    def build(self, input_shape):
        first = 1 if self.data_format == "channels_last" else 2
        sizes = input_shape[first:first + 2]
        if None in sizes:
            raise ValueError(
                f"{self.name} needs a known input height and width (it averages "
                f"into {self.output_size}); received input shape {tuple(input_shape)}."
            )
        self._identity = tuple(sizes) == tuple(self.output_size)
        self._matrices = [_bin_matrix(n, m) for n, m in zip(sizes, self.output_size)]
        super().build(input_shape)

    def call(self, inputs):
        if self._identity:
            return inputs
        rows, cols = (ops.convert_to_tensor(m, dtype=inputs.dtype) for m in self._matrices)
        if self.data_format == "channels_last":
            x = ops.einsum("bhwc,oh->bowc", inputs, rows)
            return ops.einsum("bowc,pw->bopc", x, cols)
        x = ops.einsum("bchw,oh->bcow", inputs, rows)
        return ops.einsum("bcow,pw->bcop", x, cols)


def _bin_matrix(size, out):
    """(out, size): row i averages torch's adaptive bin i of `size` inputs."""
    matrix = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = i * size // out, -(-(i + 1) * size // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix
