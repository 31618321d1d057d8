"""Training recipes: optimizer, schedule, loss, augmentation, stopping.

    kcnn.train(model, data, recipe="alexnet2012")

- `"default"`: the modern recipe. AdamW (weight decay 0.05, none on biases and
  normalisation parameters, as timm trains: `kcnn.optimizers.AdamW`), linear
  warm-up then cosine decay of the learning rate, label smoothing 0.1, early
  stopping with the best weights restored.
- `"alexnet2012"`: Krizhevsky et al. (2012). SGD, learning rate 0.01,
  momentum 0.9, batch 128, weight decay 5e-4 coupled as in the paper (added to
  the gradient before momentum, `kcnn.training.SGD`), the learning rate
  divided by 10 when the validation loss stops improving, random crops, flips
  and PCA lighting noise, dropout 0.5 (the builders' default).

The augmentation suits the data: small grayscale images (digits, MNIST) get
per-dataset standardisation and small random shifts, no flips, crops or
colour noise, whatever the recipe.

`kcnn.train(..., schedule=, loss=, label_smoothing=, augment=)` overrides a
recipe's schedule, loss and augmentation one at a time.
"""

import dataclasses
import difflib

import keras

from kcnn import schedules
from kcnn.data import Augment
from kcnn.optimizers import AdamW, SGD


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe; `dataclasses.replace(recipe, ...)` makes variants."""

    name: str
    optimizer: str  # "adamw" or "sgd"
    learning_rate: float
    batch_size: int
    epochs: int
    weight_decay: float = 0.0
    momentum: float = 0.9
    # AdamW recipes: whether one-dimensional variables (biases, normalisation
    # scales and offsets) decay too; timm and kcnn leave them out.
    decay_1d: bool = False
    warmup_epochs: int = 0
    schedule: str = "cosine"  # "cosine" (per step), "plateau" or "constant"
    plateau_patience: int = 3  # torch's: the rate drops after patience + 1 bad epochs
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = 10
    augment: Augment = Augment()
    pca_lighting: float = 0.0
    # Overrides for small grayscale images (digits, MNIST), where a small
    # network trains best with a higher rate and smaller batches.
    small_grayscale: tuple = ()

    def for_data(self, *, small_grayscale):
        """This recipe adapted to the data (see `small_grayscale`)."""
        if small_grayscale and self.small_grayscale:
            return dataclasses.replace(self, **dict(self.small_grayscale))
        return self

    def make_schedule(self, *, steps_per_epoch, epochs, learning_rate=None,
                      monitor="val_loss"):
        """The recipe's rate: a schedule, a `kcnn.schedules.ReduceLROnPlateau`
        callback (whose `learning_rate` the optimizer starts from), or a number."""
        rate = self.learning_rate if learning_rate is None else learning_rate
        if self.schedule == "cosine":
            # Per optimizer step (steps_per_epoch=1: counts are steps), smooth
            # within epochs, warming up from 0 as the usual recipes do.
            warmup = self.warmup_epochs * steps_per_epoch
            return schedules.create(
                "cosine", learning_rate=rate, t_max=max(epochs * steps_per_epoch - warmup, 1),
                warmup_epochs=warmup, warmup_start_factor=0.0)
        if self.schedule == "plateau":
            return schedules.create("plateau", learning_rate=rate, monitor=monitor,
                                    patience=self.plateau_patience)
        return rate

    def make_optimizer(self, *, steps_per_epoch=None, epochs=None, learning_rate=None,
                       clipnorm=None, gradient_accumulation_steps=None):
        """The recipe's optimizer.

        `learning_rate` is a schedule (used as it is) or a number (None: the
        recipe's); a number, given `steps_per_epoch` and `epochs`, follows the
        recipe's schedule (a plateau schedule's callback is `make_schedule`'s).
        """
        rate = self.learning_rate if learning_rate is None else learning_rate
        if steps_per_epoch is not None and not isinstance(
                rate, keras.optimizers.schedules.LearningRateSchedule):
            rate = self.make_schedule(steps_per_epoch=steps_per_epoch, epochs=epochs,
                                      learning_rate=rate)
            if isinstance(rate, keras.callbacks.Callback):
                rate = rate.learning_rate
        extra = {}
        if clipnorm is not None:
            extra["clipnorm"] = clipnorm
        if gradient_accumulation_steps:
            extra["gradient_accumulation_steps"] = gradient_accumulation_steps
        if self.optimizer == "sgd":
            return SGD(learning_rate=rate, momentum=self.momentum, l2=self.weight_decay,
                       **extra)
        return AdamW(learning_rate=rate, weight_decay=self.weight_decay,
                     decay_1d=self.decay_1d, **extra)

    def augmentation(self, *, small_grayscale, channels=3):
        """The recipe's augmentation for the data; colour noise only for RGB models."""
        if small_grayscale:
            return Augment(crop=False, flip=False, shift=2)
        augment = dataclasses.replace(self.augment, pca_lighting=self.pca_lighting)
        if channels != 3:
            augment = dataclasses.replace(augment, **{name: 0 for name in augment.rgb_only()})
        return augment


RECIPES = {
    "default": Recipe(
        name="default", optimizer="adamw", learning_rate=2e-3, batch_size=64,
        epochs=15, weight_decay=0.05, warmup_epochs=1, schedule="cosine",
        label_smoothing=0.1, early_stopping_patience=10,
        small_grayscale=(("learning_rate", 1e-2), ("batch_size", 32), ("epochs", 20))),
    "alexnet2012": Recipe(
        name="alexnet2012", optimizer="sgd", learning_rate=0.01, batch_size=128,
        epochs=90, weight_decay=5e-4, momentum=0.9, schedule="plateau",
        plateau_patience=3, early_stopping_patience=10, pca_lighting=0.1),
}


def get_recipe(recipe):
    """A `Recipe` from its name (see `RECIPES`) or the recipe itself."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        close = difflib.get_close_matches(str(recipe), RECIPES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown recipe={recipe!r}.{hint} Available: "
                         f"{', '.join(sorted(RECIPES))}, or a kcnn.training.Recipe.")
    return RECIPES[recipe]
