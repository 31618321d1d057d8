"""The builders' `init=` argument: how a new model's weights are drawn.

- "keras": Keras's defaults, Glorot uniform kernels and zero biases.
- "torchvision": what torchvision's source does for the family (its
  `_initialize_weights` or the loop at the end of its `__init__`), which
  differs by family; where torchvision sets nothing, torch's layer defaults.
- "paper": AlexNet's own (`kcnn.models.alexnet`), not in this table.

Batch norm is scale 1, offset 0 under every scheme (Keras and torch agree).

torchvision's rules, in torch's terms (a convolution's weight is
(out, in / groups, kh, kw): fan_in = in / groups * kh * kw, fan_out =
out * kh * kw; a depthwise one is (C, 1, kh, kw): fan_in = kh * kw,
fan_out = C * kh * kw; a Linear's fan_in is in_features):

| family       | convolution kernel       | its bias | dense kernel          | its bias |
|--------------|--------------------------|----------|-----------------------|----------|
| alexnet      | torch default            | torch    | torch default         | torch    |
| vgg          | He normal, fan_out       | 0        | N(0, 0.01)            | 0        |
| resnet       | He normal, fan_out       | (none)   | torch default         | torch    |
| densenet     | He normal, fan_in        | (none)   | torch default         | 0        |
| googlenet    | N(0, 0.01) (1)           | (none)   | N(0, 0.01) (1)        | torch    |
| mobilenet_v2 | He normal, fan_out       | 0        | N(0, 0.01)            | 0        |
| efficientnet | He normal, fan_out       | 0        | U(+-1/sqrt(fan_out))  | 0        |
| lenet5, simple_cnn (no torchvision model) | torch default | torch | torch default | torch |

"torch default" is `kaiming_uniform_(a=sqrt(5))`, U(+-1/sqrt(fan_in)); a
torch bias is U(+-1/sqrt(fan_in)) of its layer's fan_in. He normal is
N(0, sqrt(2 / fan)). (1) torchvision's `trunc_normal_(std=0.01, a=-2, b=2)`
cuts at +-2 absolute, 200 standard deviations: a plain normal.

Each initializer is Keras's `RandomNormal` or `RandomUniform` with the
numbers computed from torch's fans, so a saved model's config says exactly
what was drawn (and the depthwise fans, which Keras counts differently from
torch, are right). On JAX kcnn's subclasses of the two (below) draw with
numpy on the host instead of JAX's random ops, each of which XLA compiles for
its shape: a ResNet-50 built with JAX's draws spent 5.7 of its 6.9 s in 70
compilations, and took 1.3x keras.applications' build; drawn on the host it
builds in 1.2 s against keras.applications' 5.4 (`benchmarks/build_time.py`,
`benchmarks/results/build_time_jax.json`). TensorFlow and torch compile
nothing here, and their draws are faster than numpy's (25M normals: torch
0.14 s, numpy 0.3-0.5 s), so they keep Keras's draws.
"""

import contextlib
import contextvars
import math

import keras
import numpy as np

INITS = ("keras", "torchvision")

# Kernel rules: std or bound from torch's (fan_in, fan_out).
_KERNEL = {
    "torch": lambda fan_in, fan_out: _uniform(1.0 / math.sqrt(fan_in)),
    "he_fan_out": lambda fan_in, fan_out: _normal(math.sqrt(2.0 / fan_out)),
    "he_fan_in": lambda fan_in, fan_out: _normal(math.sqrt(2.0 / fan_in)),
    "normal_0.01": lambda fan_in, fan_out: _normal(0.01),
    "uniform_fan_out": lambda fan_in, fan_out: _uniform(1.0 / math.sqrt(fan_out)),
}
_BIAS = {
    "torch": lambda fan_in: _uniform(1.0 / math.sqrt(fan_in)),
    "zeros": lambda fan_in: "zeros",
}

# family: (conv kernel, conv bias, dense kernel, dense bias), as the table above.
_TORCH_DEFAULTS = ("torch", "torch", "torch", "torch")
TORCHVISION = {
    "alexnet": _TORCH_DEFAULTS,
    "vgg": ("he_fan_out", "zeros", "normal_0.01", "zeros"),
    "resnet": ("he_fan_out", "zeros", "torch", "torch"),
    "densenet": ("he_fan_in", "zeros", "torch", "zeros"),
    "googlenet": ("normal_0.01", "zeros", "normal_0.01", "torch"),
    "mobilenet_v2": ("he_fan_out", "zeros", "normal_0.01", "zeros"),
    "efficientnet": ("he_fan_out", "zeros", "uniform_fan_out", "zeros"),
    "lenet5": _TORCH_DEFAULTS,
    "simple_cnn": _TORCH_DEFAULTS,
}

# A family's own schemes. AlexNet's paper (Section 5): every weight from
# N(0, 0.01), biases 0; alexnet.py sets the biases of 1 by layer name.
OWN = {"alexnet": {"paper": ("normal_0.01", "zeros", "normal_0.01", "zeros")}}

_SCHEME = contextvars.ContextVar("kcnn_init_scheme", default=None)


def _normal(std):
    return RandomNormal(0.0, std)


def _uniform(bound):
    return RandomUniform(-bound, bound)


def _host_draw(initializer, dtype):
    """(numpy Generator, numpy dtype) for a host draw, or None where Keras's own
    draw runs: on TensorFlow and torch, for a `SeedGenerator` seed (its state
    lives on the backend) and for a variable dtype other than float32/float64
    (bfloat16 and float16 variables are drawn as Keras draws them)."""
    seed = initializer.seed
    name = keras.backend.standardize_dtype(dtype or keras.config.floatx())
    if (keras.backend.backend() != "jax" or isinstance(seed, bool)
            or not isinstance(seed, int) or name not in ("float32", "float64")):
        return None
    return np.random.default_rng(seed % 2**64), np.dtype(name)


@keras.saving.register_keras_serializable(package="kcnn")
class RandomNormal(keras.initializers.RandomNormal):
    """`keras.initializers.RandomNormal`; on JAX drawn by numpy on the host
    (PCG64 seeded with the initializer's integer seed): the same config and
    distribution, without a compilation per shape (see the module docstring).
    Like Keras's, an integer-seeded (or unseeded) instance draws the same
    values on every call."""

    def __call__(self, shape, dtype=None):
        host = _host_draw(self, dtype)
        if host is None:
            return super().__call__(shape, dtype=dtype)
        rng, np_dtype = host
        return (self.mean + self.stddev * rng.standard_normal(shape, dtype=np_dtype)
                ).astype(np_dtype, copy=False)


@keras.saving.register_keras_serializable(package="kcnn")
class RandomUniform(keras.initializers.RandomUniform):
    """`keras.initializers.RandomUniform`; on JAX drawn by numpy on the host in
    [minval, maxval), as `RandomNormal` above."""

    def __call__(self, shape, dtype=None):
        host = _host_draw(self, dtype)
        if host is None:
            return super().__call__(shape, dtype=dtype)
        rng, np_dtype = host
        width = self.maxval - self.minval
        return (self.minval + width * rng.random(shape, dtype=np_dtype)
                ).astype(np_dtype, copy=False)


def check(family, init, model_name):
    """A ValueError naming `init` and the values `family` allows, unless `init` is one.

    Every family allows `INITS`; a family with schemes of its own (`OWN`) adds them.
    """
    allowed = INITS + tuple(OWN.get(family, {}))
    if init not in allowed:
        raise ValueError(
            f"init must be one of {', '.join(map(repr, allowed))} for {model_name}; "
            f"received init={init!r}."
        )


@contextlib.contextmanager
def scheme(family, init):
    """Build the layers created inside with `init`'s initializers for `family`.

    `init` has passed `check`. The helpers `conv`, `depthwise` and `dense` read
    it; outside any scheme they give Keras's defaults.
    """
    own = OWN.get(family, {})
    rules = own[init] if init in own else TORCHVISION[family]
    token = _SCHEME.set(None if init == "keras" else rules)
    try:
        yield
    finally:
        _SCHEME.reset(token)


def conv(in_channels, filters, kernel_size, groups=1):
    """`kernel_initializer` and `bias_initializer` of a Conv2D (square kernel)."""
    receptive = kernel_size * kernel_size
    return _initializers(0, 1, fan_in=in_channels // groups * receptive,
                         fan_out=filters * receptive)


def depthwise(channels, kernel_size):
    """`depthwise_initializer` and `bias_initializer` of a DepthwiseConv2D."""
    receptive = kernel_size * kernel_size
    found = _initializers(0, 1, fan_in=receptive, fan_out=channels * receptive)
    return {"depthwise_initializer": found.pop("kernel_initializer"), **found}


def dense(in_features, units):
    """`kernel_initializer` and `bias_initializer` of a Dense layer."""
    return _initializers(2, 3, fan_in=in_features, fan_out=units)


def _initializers(kernel_role, bias_role, *, fan_in, fan_out):
    rules = _SCHEME.get()
    if rules is None:
        return {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
    # New instances per layer, so that equal-shaped layers get different draws.
    return {
        "kernel_initializer": _KERNEL[rules[kernel_role]](fan_in, fan_out),
        "bias_initializer": _BIAS[rules[bias_role]](fan_in),
    }
