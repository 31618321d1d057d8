"""A registered kcnn architecture as a keras-tuner `HyperModel`.

Each trial is one `kcnn.train` run with the trial's values: the same data
sources, pipelines, recipe, callbacks and strategies as training, so the values
found carry over to the long run. Builders with a `dropout` argument get the
trial's rate there (every dropout layer of the builder); builders without one
(LeNet-5, ResNet, DenseNet) get one `Dropout` layer in front of their
classifier, the place modern heads put it. Switching optimizer keeps the new
optimizer's own recipe weight decay unless that is tuned too.

keras-tuner clears the Keras session before every trial, which drops the global
dtype policy and the `keras.distribution` set-up: `build()` puts back the ones
it was given, every time.
"""

import dataclasses
import inspect

import keras
import keras_tuner as kt

from kcnn import registry
from kcnn.training import RECIPES, get_recipe, train
from kcnn.tuning.space import search_space

OBJECTIVE = "val_top1"  # kcnn.train's validation top-1 accuracy: what a search maximises
# The weight decay an optimizer gets when the search switches to it and does not
# tune the decay: its recipe's (decoupled 0.05 for AdamW would be far too strong
# as SGD's coupled L2).
_WEIGHT_DECAY = {RECIPES[name].optimizer: RECIPES[name].weight_decay
                 for name in ("default", "alexnet2012")}


class KcnnHyperModel(kt.HyperModel):
    """A registered kcnn architecture as a keras-tuner `HyperModel`.

    `build(hp)` makes the model with the trial's dropout, under the dtype policy
    and `keras.distribution` given here (keras-tuner clears the session before
    each trial); `fit(hp, model, source, ...)` trains it with `kcnn.train` and
    the trial's learning rate, optimizer and weight decay.

    Args:
        model: a registered model name, e.g. "lenet5".
        builder_kwargs: passed to the builder (classes, input_shape, ...).
        space: see `kcnn.tuning.search_space`.
        recipe: the `kcnn.training` recipe each trial trains with.
        batch_size: global batch size (default: the recipe's).
        strategy: passed to `kcnn.train` for every trial.
        dtype_policy: the policy every `build()` starts from.
        distribution: a `keras.distribution` set-up every `build()` re-applies.
        seed: seeds every trial's initial weights and data order alike, so that
            trials differ only by their hyperparameters, and retraining the best
            values repeats the best trial.
    """

    def __init__(self, model, *, builder_kwargs=None, space=None, recipe="default",
                 batch_size=None, strategy=None, dtype_policy=None, distribution=None,
                 seed=0):
        super().__init__(name=model)
        self.builder = registry.get_builder(model)
        self.builder_kwargs = dict(builder_kwargs or {})
        self.space = search_space(space)
        self.recipe = get_recipe(recipe)
        self.batch_size = batch_size
        self.strategy = strategy
        self.dtype_policy = dtype_policy or keras.config.dtype_policy()
        self.distribution = distribution
        self.seed = seed
        self.builder_has_dropout = "dropout" in inspect.signature(self.builder).parameters

    def declare_hyperparameters(self, hp):
        hp.merge(self.space, overwrite=False)

    def build(self, hp):
        self.declare_hyperparameters(hp)
        keras.config.set_dtype_policy(self.dtype_policy)
        # The same initial weights in every trial (and in the retraining).
        keras.utils.set_random_seed(self.seed)
        if self.distribution is not None:
            keras.distribution.set_distribution(self.distribution)
        rate = hp.get("dropout") if "dropout" in hp else None
        if rate is not None and self.builder_has_dropout:
            return self.builder(**self.builder_kwargs, dropout=rate)
        model = self.builder(**self.builder_kwargs)
        return model if rate is None else _with_dropout(model, rate)

    def fit(self, hp, model, x, validation_data=None, epochs=1, initial_epoch=0,
            callbacks=(), verbose="auto"):
        # Hyperband continues a trial from its parent's checkpoint (loaded by
        # keras-tuner into `model`): train the remaining epochs.
        return self.train(hp, model, x, validation_data, epochs - initial_epoch,
                          callbacks=callbacks, verbose=verbose)

    def trial_recipe(self, hp):
        """The recipe with the trial's optimizer and weight decay."""
        changes = {k: hp.get(k) for k in ("optimizer", "weight_decay") if k in hp}
        if changes.get("optimizer", self.recipe.optimizer) != self.recipe.optimizer \
                and "weight_decay" not in changes:
            changes["weight_decay"] = _WEIGHT_DECAY[changes["optimizer"]]
        return dataclasses.replace(self.recipe, **changes) if changes else self.recipe

    def train(self, hp, model, x, validation_data, epochs, callbacks=(), verbose="auto"):
        """One `kcnn.train` run of `model` with the values in `hp`."""
        rate = hp.get("learning_rate") if "learning_rate" in hp else None
        return train(model, x, validation_data=validation_data, epochs=epochs,
                     batch_size=self.batch_size, recipe=self.trial_recipe(hp),
                     learning_rate=rate, strategy=self.strategy,
                     callbacks=list(callbacks), seed=self.seed, verbose=verbose)


def _with_dropout(model, rate):
    """`model` with a `Dropout(rate)` layer in front of its classifier.

    The classifier is the last Dense layer; the layers after it (the output
    activation) are applied again in order.
    """
    denses = [i for i, layer in enumerate(model.layers)
              if isinstance(layer, keras.layers.Dense)]
    if not denses:
        raise ValueError(f"{model.name} has no dense classifier to put dropout in front "
                         "of; tune it with space={'dropout': None}.")
    classifier = model.layers[denses[-1]]
    x = keras.layers.Dropout(rate, name="dropout")(classifier.input)
    x = classifier(x)
    for layer in model.layers[denses[-1] + 1:]:
        x = layer(x)
    extra = {"metadata": model.metadata} if hasattr(model, "metadata") else {}
    return type(model)(model.inputs, x, name=model.name, **extra)
