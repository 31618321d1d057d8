"""The default recipe's AdamW decays kernels only: biases and normalisation
parameters (every one-dimensional variable) are left out, as timm trains."""

import dataclasses

import kcnn  # noqa: F401,I001  (first: it orders keras before TensorFlow)
import keras
import numpy as np

from kcnn.optimizers import AdamW
from kcnn.training import get_recipe

LEARNING_RATE = 0.1
STEPS = 2


def decayed_after_steps(recipe, steps=STEPS):
    """A tiny model (conv bias, batch norm, layer norm, dense bias) given `steps`
    optimizer steps with zero gradients, so that Adam's own step is 0 and only the
    decay moves weights; returns (path, before, after) of each trainable variable."""
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(3, 3),
        keras.layers.BatchNormalization(),
        keras.layers.LayerNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    variables = model.trainable_variables
    for variable in variables:  # no zeros, so that decay shows
        variable.assign(np.full(variable.shape, 0.5, "float32"))
    before = [np.array(v.numpy()) for v in variables]
    optimizer = recipe.make_optimizer(learning_rate=LEARNING_RATE)
    zeros = [keras.ops.zeros(v.shape) for v in variables]
    for _ in range(steps):
        optimizer.apply(zeros, variables)
    return [(v.path, value, v.numpy()) for v, value in zip(variables, before, strict=True)]


def test_default_recipe_decays_kernels_and_leaves_biases_and_norm_parameters_alone():
    recipe = get_recipe("default")
    shrink = (1 - LEARNING_RATE * recipe.weight_decay) ** STEPS
    variables = decayed_after_steps(recipe)
    assert sum(before.ndim <= 1 for _, before, _ in variables) == 6  # conv and dense
    # biases, BN and LN gamma and beta; and two kernels
    assert sum(before.ndim > 1 for _, before, _ in variables) == 2
    for path, before, after in variables:
        if before.ndim <= 1:
            np.testing.assert_array_equal(after, before, err_msg=path)
        else:
            np.testing.assert_allclose(after, before * shrink, rtol=1e-5, err_msg=path)
    # Keras's behaviour, for contrast: everything decays.
    for path, before, after in decayed_after_steps(dataclasses.replace(recipe,
                                                                       decay_1d=True)):
        np.testing.assert_allclose(after, before * shrink, rtol=1e-5, err_msg=path)


def test_the_default_recipes_optimizer_is_kcnns_adamw_and_saves_as_such():
    # kcnn.train compiles with recipe.make_optimizer (kcnn/training/train.py).
    optimizer = get_recipe("default").make_optimizer(steps_per_epoch=4, epochs=2)
    assert isinstance(optimizer, AdamW) and optimizer.decay_1d is False
    assert optimizer.weight_decay == get_recipe("default").weight_decay
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, AdamW) and restored.decay_1d is False
