"""Local Response Normalization (Krizhevsky, Sutskever and Hinton, 2012).

One formula, three implementations that compute it to float32 rounding:

- `_lrn_ops`: the common path, in `keras.ops`. The window sum adds `size`
  shifted slices of the zero-padded squares, which is exact (a cumulative-sum
  difference is not, and `average_pool(padding="same")` is wrong at the edges).
  The gradient is written out by hand: autodiff through the slices is
  several times slower.
- `_lrn_tensorflow`: `tf.nn.local_response_normalization`, which already uses
  the paper's convention, with TensorFlow's own gradient kernel.
- `_lrn_torch`: the same formula and gradient as the common path as a
  `torch.autograd.Function` whose window sums add the shifted channels in place.

`_implementation` picks one per backend, and only there; benchmarks/lrn.py
measures each against the common path and the reference ops
(benchmarks/results/lrn_<backend>.json; earlier runs' figures are in
benchmarks/README.md).
"""

import functools
import numbers

import keras
from keras import ops

__all__ = ["LocalResponseNormalization", "local_response_normalization"]


def local_response_normalization(x, size=5, alpha=1e-4, beta=0.75, k=2.0,
                                 axis=-1):
    """The LRN of `x` across `axis`, computed in float32 or wider.

    Floating inputs come back in their own dtype, others as float32. The
    arguments are trusted here (see `LocalResponseNormalization`).
    """
    x = ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    compute_dtype = keras.backend.result_type(dtype, "float32")
    rank = len(x.shape)
    implementation = _implementation(keras.backend.backend(), rank, axis % rank,
                                     compute_dtype)
    y = implementation(ops.cast(x, compute_dtype), size, alpha, beta, k, axis)
    return ops.cast(y, dtype) if keras.backend.is_float_dtype(dtype) else y


def _implementation(backend, rank, axis, dtype):
    """The one place where a backend's own kernel replaces the common path.

    Chosen on forward + backward time (benchmarks/lrn.py; the figures are in
    benchmarks/results/lrn_<backend>.json and benchmarks/README.md):
    - torch: the in-place window sums, faster than both torch's
      `LocalResponseNorm` and the common path.
    - TensorFlow, channels_last: the native op, which is the reference itself
      (bit-identical forward and gradient, two saved tensors instead of four,
      cuDNN on a GPU), kept although the common path has run faster on CPU
      inside a tf.function in some runs. channels_first: the common path,
      which beats the native op between two transposes.
    - JAX: the common path (no native LRN).
    """
    if backend == "tensorflow" and rank == 4 and axis == 3 and dtype == "float32":
        return _lrn_tensorflow
    if backend == "torch":
        return _lrn_torch
    return _lrn_ops


def _window_sum(x, size, axis):
    """sum_{j=c-size//2}^{c+size//2} x_j along `axis`, zero outside the range."""
    half = size // 2
    channels = x.shape[axis]
    padding = [[0, 0]] * len(x.shape)
    padding[axis] = [half, half]
    padded = ops.pad(x, padding)
    index = [slice(None)] * len(x.shape)
    total = None
    for start in range(size):
        index[axis] = slice(start, start + channels)
        part = padded[tuple(index)]
        total = part if total is None else total + part
    return total


def _lrn_ops(x, size, alpha, beta, k, axis):
    # The window is symmetric (odd size), so the window sum is its own adjoint
    # and the backward pass reuses it:
    #   dx = g * D^-beta - 2 * alpha * beta * x * windowsum(g * y / D).
    @ops.custom_gradient
    def lrn(x):
        denominator = k + alpha * _window_sum(ops.square(x), size, axis)
        scale = ops.power(denominator, -beta)
        y = x * scale

        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            back = _window_sum(g * y / denominator, size, axis)
            return g * scale - (2.0 * alpha * beta) * x * back

        return y, grad

    return lrn(x)


def _lrn_tensorflow(x, size, alpha, beta, k, axis):
    import tensorflow as tf

    return tf.nn.local_response_normalization(
        x, depth_radius=size // 2, bias=k, alpha=alpha, beta=beta)


def _lrn_torch(x, size, alpha, beta, k, axis):
    return _torch_lrn_function().apply(x, size, alpha, beta, k, axis)


def _torch_window_sum(x, size, axis):
    """`_window_sum` without padding: shifted channel ranges added in place."""
    total = x.clone()
    channels = x.shape[axis]
    for offset in range(1, min(size // 2, channels - 1) + 1):
        length = channels - offset
        total.narrow(axis, offset, length).add_(x.narrow(axis, 0, length))
        total.narrow(axis, 0, length).add_(x.narrow(axis, offset, length))
    return total


@functools.cache
def _torch_lrn_function():
    # Built on first use: this module is imported on every backend.
    import torch

    class TorchLRN(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, size, alpha, beta, k, axis):
            denominator = _torch_window_sum(x * x, size, axis).mul_(alpha).add_(k)
            scale = denominator.pow(-beta)
            ctx.save_for_backward(x, scale, denominator)
            ctx.constants = (size, alpha, beta, axis)
            return x * scale

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, g):
            x, scale, denominator = ctx.saved_tensors
            size, alpha, beta, axis = ctx.constants
            back = _torch_window_sum(g * x * scale / denominator, size, axis)
            dx = g * scale - (2.0 * alpha * beta) * x * back
            return dx, None, None, None, None, None

    return TorchLRN


def _check_number(name, value, *, minimum, inclusive):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not float("-inf") < float(value) < float("inf")
            or not (value >= minimum if inclusive else value > minimum)):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ValueError(
            f"{name} must be a finite number {bound}; received {name}={value!r}.")
    return float(value)


@keras.saving.register_keras_serializable(package="kcnn")
class LocalResponseNormalization(keras.layers.Layer):
    """Local Response Normalization across channels (AlexNet, section 3.3).

    With `a_c` the activation of channel c at one position, N channels and
    n = `size`:

        b_c = a_c / (k + alpha * sum_{j=max(0, c-n/2)}^{min(N-1, c+n/2)} a_j^2) ** beta

    The sum runs over the n channels centred on c, channels outside [0, N-1]
    count as zero, and alpha multiplies the raw sum: the paper's convention,
    and `tf.nn.local_response_normalization`'s. The defaults are the paper's
    (n=5, k=2, alpha=1e-4, beta=0.75).

    torch's `nn.LocalResponseNorm`, Caffe's LRN layer, cuDNN and ONNX's `LRN`
    divide alpha by the window size. Their settings convert as

        alpha (here) = alpha (torch / Caffe / ONNX) / size

    with size, beta and k unchanged: the paper's layer is torch's
    `LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)`, and Caffe's reference
    AlexNet (local_size 5, alpha 1e-4, k 1 by default) is size=5, alpha=2e-5,
    beta=0.75, k=1 here. TensorFlow's op takes alpha, beta and bias = k as
    they are, and depth_radius = (size - 1) / 2.

    It computes in float32 (or the input's wider type) whatever the dtype
    policy: under `mixed_float16`, a_j^2 overflows float16 for |a_j| > 256.

    Args:
        size: the window, a positive odd number of channels. Even windows are
            refused: they are off-centre, and torch and ONNX put the extra
            channel on opposite sides.
        alpha: the scale of the sum of squares, a number >= 0.
        beta: the exponent, a number >= 0.
        k: the additive constant, a number > 0 (k = 0 divides 0 by 0 wherever
            a whole window is zero, as it is after a ReLU).
        data_format: "channels_last" or "channels_first"; default
            `keras.config.image_data_format()`. Inputs of any rank >= 2 with
            the channels on the last (or second) axis.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        if (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                or size < 1 or size % 2 == 0):
            raise ValueError(
                f"size must be a positive odd integer (the paper uses 5); "
                f"received size={size!r}.")
        if data_format is None:
            data_format = keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "data_format must be 'channels_last', 'channels_first' or None; "
                f"received data_format={data_format!r}.")
        self.size = int(size)
        self.alpha = _check_number("alpha", alpha, minimum=0, inclusive=True)
        self.beta = _check_number("beta", beta, minimum=0, inclusive=True)
        self.k = _check_number("k", k, minimum=0, inclusive=False)
        self.data_format = data_format
        self.axis = -1 if data_format == "channels_last" else 1
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[self.axis] is None:
            raise ValueError(
                f"{type(self).__name__} needs inputs of rank >= 2 with a known "
                f"number of channels on axis {self.axis} ({self.data_format}); "
                f"received input_shape={tuple(input_shape)}.")

    def call(self, inputs):
        y = local_response_normalization(inputs, self.size, self.alpha, self.beta,
                                         self.k, self.axis)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha,
                "beta": self.beta, "k": self.k, "data_format": self.data_format}
