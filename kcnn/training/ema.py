"""An exponential moving average of a model's weights, as torchvision trains.

    ema = ModelEMA(ModelEMA.adjusted_decay(0.99998, steps=32, batch_size=1024,
                                           epochs=600), steps=32, warmup_epochs=5)
    model.fit(train, validation_data=val, epochs=600, callbacks=[ema])

The recipe of torchvision's ResNet-50 IMAGENET1K_V2 weights (pytorch/vision#3995,
run with pytorch/vision `references/classification/train.py --model-ema
--model-ema-steps 32 --model-ema-decay 0.99998`) keeps such an average and
reports it ("Test: EMA"). What this callback does, and where it follows it:

- The average covers every floating-point weight of the model, trainable or
  not: the batch-norm moving mean and variance are averaged too, as
  `utils.ExponentialMovingAverage` does (a `torch.optim.swa_utils.AveragedModel`
  with `use_buffers=True`). Keras's seed-generator states are not weights
  (`model.weights` leaves them out) and stay as they are; kcnn's models have no
  integer weights (torch's `num_batches_tracked` has no Keras counterpart).
- The schedule is train.py's `train_one_epoch`: after the optimizer step of
  batch `i` of an epoch (counted from 0 in each epoch), when `i % steps == 0`,
  the average is updated as `AveragedModel.update_parameters` does: the first
  update copies the weights, each later one sets
  `average = decay * average + (1 - decay) * weight`. During the first
  `warmup_epochs` epochs every update is followed by a reset (train.py's
  `n_averaged.fill_(0)`), so the average copies the weights until warm-up ends.
  One batch is one optimizer step here; under `gradient_accumulation_steps` or
  `steps_per_execution` the callback still counts batches.
- train.py computes its decay from the one on the command line, scaled to the
  number of updates a run makes: `ModelEMA.adjusted_decay`.
- Validation inside `fit` evaluates the average: Keras runs it between the
  last training batch and `on_epoch_end`, so the averaged weights go in at
  `on_test_begin` and the live ones come back at `on_test_end`, and every
  `val_*` in the logs is the average's. torchvision evaluates both models each
  epoch; Keras evaluates once, so the live model's validation metrics are not
  logged. Callbacks that act at `on_epoch_end` (`ModelCheckpoint`,
  `BackupAndRestore`) see the live weights.
- When `fit` ends the model holds the averaged weights, so they are the ones
  saved (torchvision's released weights are its `model_ema`). The live weights
  are kept; a later `fit` with this callback puts them back first and trains on.
- A resumed run keeps the average: `get_state()` after an epoch, saved beside
  the model's checkpoint, and `set_state()` on a new callback before `fit`
  (torchvision's checkpoint holds `model_ema` for the same reason).

Keras's own `Optimizer(use_ema=True)` is a different average: it covers the
trainable variables only (not the batch-norm statistics), updates after every
step with no warm-up copy, validates the live weights and writes the average
into the model only at the end or every `ema_overwrite_frequency` steps.

The average lives in Keras variables updated with `keras.ops` every `steps`
batches only; between updates the callback costs nothing.
"""

import contextlib
import numbers

import keras
import numpy as np
from keras import ops

from kcnn import checks


class ModelEMA(keras.callbacks.Callback):
    """Keeps torchvision's exponential moving average of a model's weights.

    Args:
        decay: weight of the old average at each update, in [0, 1). For
            torchvision's values, pass `ModelEMA.adjusted_decay(...)`.
        steps: update after every `steps`-th batch of an epoch (batches 0,
            steps, 2 * steps, ... of each epoch), as `--model-ema-steps`.
        warmup_epochs: epochs during which the average only copies the
            weights (torchvision: the learning-rate warm-up's
            `--lr-warmup-epochs`).
    """

    def __init__(self, decay=0.99998, steps=32, warmup_epochs=0):
        super().__init__()
        self.decay = _decay(decay)
        self.steps = checks.positive_int("steps", steps)
        self.warmup_epochs = checks.int_at_least("warmup_epochs", warmup_epochs, 0)
        self.updates = 0  # torch's AveragedModel.n_averaged
        self._average = None  # keras.Variables, one per averaged weight
        self._weights = None  # the model's weights they average
        self._live = None  # the live weights while the average is swapped in
        self._swapped_for_test = False
        self._pending = None  # a state given before fit
        self._epoch = 0

    @staticmethod
    def adjusted_decay(decay, steps, batch_size, epochs):
        """torchvision's decay for a run: `decay` scaled to its number of updates.

        pytorch/vision references/classification/train.py (after pycls):

            adjust = world_size * batch_size * model_ema_steps / epochs
            alpha = min(1.0, (1.0 - model_ema_decay) * adjust)
            decay = 1.0 - alpha

        `batch_size` is the global batch (world_size * per-device batch). The
        recipe's 0.99998, 32 steps, batch 1024 and 600 epochs give 0.998908.
        """
        decay = _decay(decay)
        steps = checks.positive_int("steps", steps)
        batch_size = checks.positive_int("batch_size", batch_size)
        epochs = checks.positive_int("epochs", epochs)
        adjust = batch_size * steps / epochs
        alpha = min(1.0, (1.0 - decay) * adjust)
        return 1.0 - alpha

    # The average and its state.

    def get_state(self):
        """{"average": [arrays], "updates": n}: the average of the model's
        floating-point `model.weights`, in their order, and torch's `n_averaged`.

        Save it with the model's checkpoint after an epoch; `set_state` on a
        new callback resumes the average.
        """
        if self._average is None:
            raise ValueError("ModelEMA has no average yet: it is made when fit starts.")
        return {"average": [ops.convert_to_numpy(a) for a in self._average],
                "updates": self.updates}

    def set_state(self, state):
        """Restores `get_state()`'s state: now, or when `fit` starts."""
        if not (isinstance(state, dict) and set(state) == {"average", "updates"}):
            raise ValueError("state must be ModelEMA.get_state()'s dict with keys 'average' "
                             f"and 'updates'; received {_describe(state)}.")
        if not isinstance(state["average"], (list, tuple)):
            raise ValueError("state['average'] must be a list of arrays; received "
                             f"{_describe(state['average'])}.")
        checks.int_at_least("state['updates']", state["updates"], 0)
        self._pending = {"average": [np.asarray(a) for a in state["average"]],
                         "updates": int(state["updates"])}
        if self._average is not None:
            self._apply_pending()

    def _apply_pending(self):
        average = self._pending["average"]
        shapes = [tuple(v.shape) for v in self._average]
        given = [tuple(a.shape) for a in average]
        if given != shapes:
            raise ValueError(f"state['average'] holds arrays of shapes {given}, but this "
                             f"model's weights have shapes {shapes}.")
        for variable, value in zip(self._average, average):
            variable.assign(value)
        self.updates = self._pending["updates"]
        self._pending = None

    def _track(self, model):
        """Makes the average's variables for `model` (a copy of its weights)."""
        weights = [w for w in model.weights if _is_float(w.dtype)]
        if self._weights is not None and len(weights) == len(self._weights) and all(
                a is b for a, b in zip(weights, self._weights)):
            return
        self._weights = weights
        self._average = [keras.Variable(ops.copy(w.value), dtype=w.dtype, trainable=False,
                                        name="ema_" + w.name) for w in weights]
        self.updates = 0
        self._live = None

    def _update(self):
        """`AveragedModel.update_parameters` with torchvision's EMA function."""
        if self.updates == 0:
            for average, weight in zip(self._average, self._weights):
                average.assign(ops.copy(weight.value))
        else:
            keep, take = self.decay, 1.0 - self.decay
            for average, weight in zip(self._average, self._weights):
                average.assign(ops.add(ops.multiply(average.value, keep),
                                       ops.multiply(weight.value, take)))
        self.updates += 1

    # Swapping the average in and out.

    def _swap_in(self):
        self._live = [ops.copy(w.value) for w in self._weights]
        for weight, average in zip(self._weights, self._average):
            weight.assign(ops.copy(average.value))

    def _swap_out(self):
        for weight, live in zip(self._weights, self._live):
            weight.assign(live)
        self._live = None

    @contextlib.contextmanager
    def averaged(self):
        """The model holds the averaged weights inside the block (e.g. to save
        them at an epoch's end), the live ones again after it."""
        if self._average is None:
            raise ValueError("ModelEMA has no average yet: it is made when fit starts.")
        if self._live is not None:  # already in
            yield
            return
        self._swap_in()
        try:
            yield
        finally:
            self._swap_out()

    # Keras hooks.

    def on_train_begin(self, logs=None):
        model = self.model  # on JAX, this reattaches the training state
        if self._live is not None:
            self._swap_out()  # a later fit trains the live weights on
        self._track(model)
        if self._pending is not None:
            self._apply_pending()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.steps:
            return
        self.model  # noqa: B018  (on JAX: the step's weights are written back)
        self._update()
        if self._epoch < self.warmup_epochs:
            self.updates = 0

    def on_test_begin(self, logs=None):
        if self._average is None or self._live is not None:
            return  # nothing averaged yet, or the average already in
        self.model  # noqa: B018
        self._swap_in()
        self._swapped_for_test = True

    def on_test_end(self, logs=None):
        if self._swapped_for_test:
            self._swap_out()
            self._swapped_for_test = False

    def on_train_end(self, logs=None):
        self.model  # noqa: B018
        if self._live is None:
            self._swap_in()


def _decay(decay):
    if (isinstance(decay, bool) or not isinstance(decay, numbers.Real)
            or not 0 <= decay < 1):
        raise ValueError(f"decay must be a number in [0, 1); received decay={decay!r}.")
    return float(decay)


def _is_float(dtype):
    return "float" in str(dtype)


def _describe(state):
    if isinstance(state, dict):
        return f"a dict with keys {sorted(map(str, state))}"
    return f"a {type(state).__name__}"

