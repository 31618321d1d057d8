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
- `"torchvision"`: the recipe of torchvision's ResNet-50 IMAGENET1K_V2 weights
  (the command is quoted at `RECIPES`). SGD with momentum, the rate scaled
  linearly from 0.5 at batch 1024, warm-up then cosine per epoch, no weight
  decay on normalisation parameters, RandomResizedCrop at 176,
  TrivialAugmentWide, random erasing, MixUp or CutMix, label smoothing, and a
  moving average of the weights (`kcnn.training.ModelEMA`) that validation
  measures and that is saved; evaluation at resize 232, crop 224. Without
  torchvision's repeated-augmentation sampler (`--ra-sampler`).

The augmentation suits the data: small grayscale images (digits, MNIST) get
per-dataset standardisation and small random shifts, no flips, crops or
colour noise, whatever the recipe.

`kcnn.train(..., schedule=, loss=, label_smoothing=, augment=)` overrides a
recipe's schedule, loss and augmentation one at a time.
"""

import dataclasses
import difflib

import keras

from kcnn import _keras_internal, schedules
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
    # SGD recipes: whether the parameters of normalisation layers decay too
    # (torchvision's `--norm-weight-decay 0.0` leaves them out; biases decay).
    decay_norm: bool = True
    # The global batch `learning_rate` is quoted for: None, the rate as it is;
    # else it scales linearly to the batch used (Goyal et al., 2017).
    reference_batch: int | None = None
    warmup_epochs: int = 0
    # The warm-up's first rate as a fraction of the peak (torch's LinearLR
    # start_factor).
    warmup_start_factor: float = 0.0
    schedule: str = "cosine"  # "cosine", "plateau" or "constant"
    # Cosine: stepped once per epoch, as torch's epoch schedulers in
    # torchvision's train.py, rather than smoothly per optimizer step.
    schedule_per_epoch: bool = False
    plateau_patience: int = 3  # torch's: the rate drops after patience + 1 bad epochs
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = 10
    augment: Augment = Augment()
    pca_lighting: float = 0.0
    # The training crop and the evaluation resize (shorter side before the
    # centre crop of the model's size), for models trained on large images;
    # None: the model's own. A training crop other than the model's input size
    # needs a model built for any input size.
    train_crop: int | None = None
    eval_resize: int | None = None
    # An exponential moving average of the weights (`kcnn.training.ModelEMA`):
    # torchvision's --model-ema-decay and --model-ema-steps; None: none.
    ema_decay: float | None = None
    ema_steps: int = 32
    # Overrides for small grayscale images (digits, MNIST), where a small
    # network trains best with a higher rate and smaller batches.
    small_grayscale: tuple = ()

    def __post_init__(self):
        if self.ema_decay is not None and self.early_stopping_patience:
            raise ValueError(
                f"recipe {self.name!r} has both ema_decay={self.ema_decay} and "
                f"early_stopping_patience={self.early_stopping_patience}: early stopping "
                "restores the best epoch's live weights over the moving average at the end. "
                "Set one of them to None.")

    def for_data(self, *, small_grayscale):
        """This recipe adapted to the data (see `small_grayscale`)."""
        if small_grayscale and self.small_grayscale:
            return dataclasses.replace(self, **dict(self.small_grayscale))
        return self

    def rate_for_batch(self, batch_size):
        """The recipe's learning rate at `batch_size` (scaled linearly from
        `reference_batch`, when the recipe quotes its rate for one)."""
        if self.reference_batch is None:
            return self.learning_rate
        return self.learning_rate * batch_size / self.reference_batch

    def make_schedule(self, *, steps_per_epoch, epochs, learning_rate=None,
                      monitor="val_loss"):
        """The recipe's rate: a schedule, a `kcnn.schedules.ReduceLROnPlateau`
        callback (whose `learning_rate` the optimizer starts from), or a number."""
        rate = self.learning_rate if learning_rate is None else learning_rate
        if self.schedule == "cosine" and self.schedule_per_epoch:
            # torch's SequentialLR(LinearLR, CosineAnnealingLR) stepped once an epoch.
            return schedules.create(
                "cosine", learning_rate=rate, steps_per_epoch=steps_per_epoch,
                t_max=max(epochs - self.warmup_epochs, 1), warmup_epochs=self.warmup_epochs,
                warmup_start_factor=self.warmup_start_factor)
        if self.schedule == "cosine":
            # Per optimizer step (steps_per_epoch=1: counts are steps), smooth
            # within epochs.
            warmup = self.warmup_epochs * steps_per_epoch
            return schedules.create(
                "cosine", learning_rate=rate, t_max=max(epochs * steps_per_epoch - warmup, 1),
                warmup_epochs=warmup, warmup_start_factor=self.warmup_start_factor)
        if self.schedule == "plateau":
            return schedules.create("plateau", learning_rate=rate, monitor=monitor,
                                    patience=self.plateau_patience)
        return rate

    def make_optimizer(self, *, steps_per_epoch=None, epochs=None, learning_rate=None,
                       clipnorm=None, gradient_accumulation_steps=None, model=None):
        """The recipe's optimizer.

        `learning_rate` is a schedule (used as it is) or a number (None: the
        recipe's); a number, given `steps_per_epoch` and `epochs`, follows the
        recipe's schedule (a plateau schedule's callback is `make_schedule`'s).
        `model`: the model it will train, which a recipe that leaves the
        normalisation layers out of the weight decay (`decay_norm=False`) needs.
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
            optimizer = SGD(learning_rate=rate, momentum=self.momentum, l2=self.weight_decay,
                            **extra)
            if self.weight_decay and not self.decay_norm:
                if model is None:
                    raise ValueError(
                        f"recipe {self.name!r} leaves normalisation layers out of the weight "
                        "decay (decay_norm=False), so make_optimizer needs the model: pass "
                        "model=.")
                optimizer.exclude_from_weight_decay(var_list=normalization_variables(model))
            return optimizer
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


def normalization_variables(model):
    """The trainable variables of `model`'s normalisation layers (batch, layer,
    group normalisation, at any depth): those of torchvision's `norm_classes`
    in `references/classification/utils.py`'s `set_weight_decay`."""
    kinds = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
             keras.layers.GroupNormalization)
    return [v for layer in _keras_internal.flatten_layers(model)
            if isinstance(layer, kinds) for v in layer.trainable_variables]


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
    # torchvision's ResNet-50 IMAGENET1K_V2 weights (80.9% top-1): the recipe
    # linked from those weights, https://github.com/pytorch/vision/issues/3995
    # (the blog post "How to Train State-Of-The-Art Models Using TorchVision's
    # Latest Primitives"), run with references/classification/train.py:
    #   --model resnet50 --batch-size 128 (x 8 GPUs) --lr 0.5 --lr-scheduler cosineannealinglr
    #   --lr-warmup-epochs 5 --lr-warmup-method linear --auto-augment ta_wide --epochs 600
    #   --random-erase 0.1 --weight-decay 0.00002 --norm-weight-decay 0.0
    #   --label-smoothing 0.1 --mixup-alpha 0.2 --cutmix-alpha 1.0 --train-crop-size 176
    #   --model-ema --val-resize-size 232 --ra-sampler --ra-reps 4
    # (train.py's --lr-warmup-decay defaults to 0.01 and --model-ema-steps to 32,
    # --model-ema-decay to 0.99998).
    "torchvision": Recipe(
        name="torchvision", optimizer="sgd", learning_rate=0.5, reference_batch=1024,
        batch_size=128, epochs=600, weight_decay=2e-5, momentum=0.9, decay_norm=False,
        warmup_epochs=5, warmup_start_factor=0.01, schedule="cosine", schedule_per_epoch=True,
        label_smoothing=0.1, early_stopping_patience=None,
        augment=Augment(resized_crop=True, flip=True, trivialaugment=True, erasing=0.1,
                        mixup=0.2, cutmix=1.0, interpolation="bilinear"),
        train_crop=176, eval_resize=232, ema_decay=0.99998, ema_steps=32),
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
