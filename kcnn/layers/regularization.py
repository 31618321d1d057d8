"""Stochastic depth (Huang, Sun, Liu, Sedra and Weinberger, 2016)."""

__all__ = ["StochasticDepth"]

import keras
from keras import ops

_MODES = ("row", "batch")


@keras.saving.register_keras_serializable(package="kcnn")
class StochasticDepth(keras.layers.Layer):
    """Drops a residual branch at random in training: y = x * b / (1 - rate).

    b ~ Bernoulli(1 - rate) is drawn once per example (`mode="row"`: the whole
    branch of that example is kept or zeroed) or once for the batch
    (`mode="batch"`); kept branches are scaled by 1 / (1 - rate) so that the
    expectation is x, and with rate 1 every branch is zero. At inference (and
    for rate 0) the layer is the identity. This is exactly
    `torchvision.ops.stochastic_depth(x, p=rate, mode)`. Put it on the branch,
    before the residual addition.

    Args:
        rate: the probability of dropping a branch, in [0, 1].
        mode: "row" (per example, EfficientNet's) or "batch".
        seed: an optional integer seed for the drops.
    """

    def __init__(self, rate, mode="row", seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(
                f"rate must be a probability in [0, 1]; received rate={rate!r}."
            )
        if mode not in _MODES:
            raise ValueError(
                f"mode must be 'row' or 'batch'; received mode={mode!r}."
            )
        self.rate = float(rate)
        self.mode = mode
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        ndim = len(inputs.shape)
        if self.mode == "row":
            shape = (ops.shape(inputs)[0],) + (1,) * (ndim - 1)
        else:
            shape = (1,) * ndim
        survival = 1.0 - self.rate
        draw = keras.random.uniform(shape, seed=self.seed_generator)
        keep = ops.cast(ops.less(draw, survival), inputs.dtype)
        if survival > 0.0:
            keep = keep / ops.cast(survival, inputs.dtype)
        return inputs * keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "mode": self.mode,
                "seed": self.seed}
