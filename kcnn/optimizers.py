"""Optimizers Keras lacks.

A top-level module, beside `losses` and `schedules`, rather than in
`kcnn.training` (which loads TensorFlow for its tf.data pipelines): `import
kcnn` imports it to register `SGD`, so that the `.keras` files `kcnn.train`
saves load on every backend, TensorFlow installed or not.
"""

import keras
from keras import ops

from kcnn import _keras_internal


@keras.saving.register_keras_serializable(package="kcnn")
class SGD(keras.optimizers.SGD):
    """SGD with momentum and *coupled* weight decay, as the AlexNet paper and torch.

    `l2` adds `l2 * w` to each gradient before the momentum update, which is
    what Krizhevsky et al. (2012) and `torch.optim.SGD(weight_decay=...)` do:

        g = grad + l2 * w;  v = momentum * v - lr * g;  w = w + v

    Keras's own `weight_decay` argument is decoupled (it shrinks the weights
    apart from the gradient, as AdamW does), which is a different optimizer
    under momentum. With a constant learning rate this equals
    `torch.optim.SGD(lr, momentum, weight_decay=l2)` step for step; when the
    rate changes, Keras folds it into the velocity while torch applies it
    after, which differs slightly for a few steps after each change.

    Variables passed to Keras's `exclude_from_weight_decay(var_list=...,
    var_names=...)` before the optimizer is built take no `l2`, as torch's
    parameter groups with `weight_decay=0` (torchvision's recipes leave
    normalisation parameters out this way, `--norm-weight-decay 0.0`).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0,
                 name="kcnn_sgd", **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError(
                "kcnn.training.SGD takes the coupled decay as l2=...; "
                f"received weight_decay={kwargs['weight_decay']!r} (Keras's "
                "decoupled decay). Use keras.optimizers.SGD for that."
            )
        if isinstance(learning_rate, (int, float)) and not (
                not isinstance(learning_rate, bool) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number or a schedule; "
                             f"received learning_rate={learning_rate!r}.")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0 <= momentum < 1:
            raise ValueError(f"momentum must be a number in [0, 1); received "
                             f"momentum={momentum!r}.")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0; received l2={l2!r}.")
        super().__init__(learning_rate=learning_rate, momentum=momentum,
                         nesterov=nesterov, name=name, **kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        if self.l2 and _keras_internal.uses_weight_decay(self, variable):
            gradient = ops.add(ops.cast(gradient, variable.dtype),
                               ops.multiply(ops.cast(self.l2, variable.dtype), variable))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


@keras.saving.register_keras_serializable(package="kcnn")
class AdamW(keras.optimizers.AdamW):
    """AdamW that, by default, leaves one-dimensional variables out of the weight decay.

    Biases and the scales and offsets of batch and layer normalisation (every
    variable of rank 0 or 1) take no decay, as timm trains (its
    `param_groups_weight_decay` puts every parameter with `ndim <= 1` in a
    group without decay): shrinking a normalisation scale towards 0 only
    fights the normalisation, and biases have no scale to regularise.
    `keras.optimizers.AdamW` decays every variable unless told which to skip
    through `exclude_from_weight_decay`, which must be called with the
    variables before the optimizer is built; this class calls it from
    `build`, when the variables are first known, so a recipe can make the
    optimizer before the model it trains exists. `decay_1d=True` decays them
    too, as Keras's AdamW does. (It replaces any exclusion set earlier by
    `exclude_from_weight_decay`.)
    """

    def __init__(self, *args, decay_1d=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.decay_1d = bool(decay_1d)

    def build(self, var_list):
        if not self.built and not self.decay_1d:
            self.exclude_from_weight_decay(
                var_list=[v for v in var_list if len(v.shape) <= 1])
        super().build(var_list)

    def get_config(self):
        return {**super().get_config(), "decay_1d": self.decay_1d}
