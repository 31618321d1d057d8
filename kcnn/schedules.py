"""Learning-rate schedules with torch's names: `kcnn.schedules.create(name, **kwargs)`.

    schedule = kcnn.schedules.create("multistep", learning_rate=0.1,
                                     milestones=[30, 60], steps_per_epoch=500)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)

- `step`: `StepLR(step_size, gamma=0.1)`, as Keras's
  `ExponentialDecay(staircase=True)`.
- `multistep`: `MultiStepLR(milestones, gamma=0.1)`, as Keras's
  `PiecewiseConstantDecay`.
- `exponential`: `ExponentialLR(gamma)`, as `ExponentialDecay(staircase=True)`.
- `cosine`: `CosineAnnealingLR(t_max, eta_min=0)`, optionally after a
  `LinearLR` warm-up, as Keras's `CosineDecay(warmup_target=...)`.
- `onecycle`: `OneCycleLR(max_lr, total_steps, ...)`: `OneCycle` (Keras has none).
- `plateau`: `ReduceLROnPlateau(mode, factor=0.1, patience=10, ...)`: a
  `ReduceLROnPlateau` callback, Keras's with torch's rules.

Arguments and defaults are torch's, lower-cased, plus `learning_rate` (the
starting rate, torch's optimizer `lr`) and `steps_per_epoch`. torch steps the
epoch-based schedules (step, multistep, exponential, cosine, plateau) once per
epoch and one-cycle once per batch; Keras asks a schedule for the rate at every
optimizer step. So `step_size`, `milestones`, `t_max` and `warmup_epochs` count
epochs of `steps_per_epoch` optimizer steps, and the rate changes at epoch
boundaries; with `steps_per_epoch=1` (the default) they count optimizer steps,
as for a torch scheduler stepped every batch. Step by step the rates equal
torch's for the same settings (tested), over the schedule's own range; past
it, cosine and one-cycle hold their last rate (torch's cosine climbs back up
and its one-cycle raises an error).

Every schedule is a `keras.optimizers.schedules.LearningRateSchedule` and is
saved with the model's optimizer (`OneCycle` and `PerEpoch` are registered
under the `kcnn` package: import kcnn before loading such a model).
"""

import difflib
import math

import keras
import numpy as np
from keras import ops

from kcnn import checks

NAMES = ("step", "multistep", "exponential", "cosine", "onecycle", "plateau")


def create(name, **kwargs):
    """A learning-rate schedule (or, for "plateau", a callback) by torch's name.

    Args:
        name: "step", "multistep", "exponential", "cosine", "onecycle" or
            "plateau".
        learning_rate: the starting rate (torch's `lr`); for one-cycle the
            default of `max_lr`; for plateau the rate to give the optimizer.
            Default 0.1.
        steps_per_epoch: optimizer steps per epoch (default 1, see the module).
        epochs: the run's length in epochs: the default of cosine's `t_max`
            and, with `steps_per_epoch`, of one-cycle's `total_steps` (as in
            torch's `OneCycleLR(epochs=, steps_per_epoch=)`). Ignored by the
            others.
        The schedule's own arguments, with torch's names and defaults:
            step: `step_size`, `gamma=0.1`.
            multistep: `milestones`, `gamma=0.1`.
            exponential: `gamma`.
            cosine: `t_max`, `eta_min=0.0`; a linear warm-up (torch's
                `LinearLR` chained before it with `SequentialLR`) of
                `warmup_epochs=0` epochs starting from
                `warmup_start_factor * learning_rate` (`LinearLR`'s
                `start_factor`, default 1/3; 0 is allowed). `t_max` counts the
                epochs after the warm-up.
            onecycle: `max_lr`, `total_steps`, `pct_start=0.3`,
                `anneal_strategy="cos"`, `div_factor=25.0`,
                `final_div_factor=1e4`, `three_phase=False`. Always per step.
            plateau: `mode="min"`, `factor=0.1`, `patience=10`,
                `threshold=1e-4`, `threshold_mode="rel"`, `cooldown=0`,
                `min_lr=0.0`, `eps=1e-8`, and Keras's `monitor="val_loss"`,
                `verbose=0`.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`; for "plateau" a
        `ReduceLROnPlateau` callback (pass it to `fit`, and its
        `learning_rate` to the optimizer).
    """
    if name not in _FACTORIES:
        close = difflib.get_close_matches(str(name), NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown schedule name={name!r}.{hint} Available: "
                         f"{', '.join(NAMES)}.")
    factory, allowed = _FACTORIES[name]
    common = {"learning_rate", "steps_per_epoch", "epochs"}
    unknown = sorted(set(kwargs) - set(allowed) - common)
    if unknown:
        raise ValueError(f"Schedule {name!r} takes no argument {unknown[0]}="
                         f"{kwargs[unknown[0]]!r}; it takes "
                         f"{', '.join(sorted(set(allowed) | common))}.")
    learning_rate = checks.positive_number("learning_rate", kwargs.pop("learning_rate", 0.1))
    steps_per_epoch = checks.positive_int("steps_per_epoch", kwargs.pop("steps_per_epoch", 1))
    epochs = kwargs.pop("epochs", None)
    if epochs is not None:
        epochs = checks.positive_int("epochs", epochs)
    return factory(learning_rate, steps_per_epoch, epochs, **kwargs)


# ----------------------------------------------------------------------------
# The factories: arguments checked, then a Keras schedule where one fits.


def _step(learning_rate, steps_per_epoch, epochs, step_size=None, gamma=0.1):
    step_size = checks.positive_int("step_size", step_size)
    return keras.optimizers.schedules.ExponentialDecay(
        learning_rate, decay_steps=step_size * steps_per_epoch,
        decay_rate=checks.positive_number("gamma", gamma), staircase=True)


def _multistep(learning_rate, steps_per_epoch, epochs, milestones=None, gamma=0.1):
    if isinstance(milestones, int) and not isinstance(milestones, bool):
        milestones = [milestones]  # "milestones=30" on the command line: one milestone
    if (not isinstance(milestones, (list, tuple)) or not milestones
            or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in milestones)
            or list(milestones) != sorted(set(milestones))):
        raise ValueError(f"milestones must be a non-empty list of increasing positive "
                         f"integers (epochs); received milestones={milestones!r}.")
    gamma = checks.positive_number("gamma", gamma)
    # PiecewiseConstantDecay moves to the next value after a boundary step;
    # torch's rate has changed at the milestone's first step.
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[m * steps_per_epoch - 1 for m in milestones],
        values=[learning_rate * gamma ** i for i in range(len(milestones) + 1)])


def _exponential(learning_rate, steps_per_epoch, epochs, gamma=None):
    return keras.optimizers.schedules.ExponentialDecay(
        learning_rate, decay_steps=steps_per_epoch,
        decay_rate=checks.positive_number("gamma", gamma), staircase=True)


def _cosine(learning_rate, steps_per_epoch, epochs, t_max=None, eta_min=0.0,
            warmup_epochs=0, warmup_start_factor=1.0 / 3.0):
    warmup_epochs = checks.int_at_least("warmup_epochs", warmup_epochs, 0)
    if t_max is None and epochs is not None:
        t_max = max(epochs - warmup_epochs, 1)
    t_max = checks.positive_int("t_max", t_max)
    if not isinstance(eta_min, (int, float)) or not 0 <= eta_min <= learning_rate:
        raise ValueError(f"eta_min must be a rate in [0, learning_rate={learning_rate}]; "
                         f"received eta_min={eta_min!r}.")
    if not isinstance(warmup_start_factor, (int, float)) or not 0 <= warmup_start_factor <= 1:
        raise ValueError(f"warmup_start_factor must be in [0, 1]; received "
                         f"warmup_start_factor={warmup_start_factor!r}.")
    alpha = float(eta_min) / learning_rate
    if warmup_epochs:
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate * float(warmup_start_factor), decay_steps=t_max, alpha=alpha,
            warmup_target=learning_rate, warmup_steps=warmup_epochs)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=t_max, alpha=alpha)
    return schedule if steps_per_epoch == 1 else PerEpoch(schedule, steps_per_epoch)


def _onecycle(learning_rate, steps_per_epoch, epochs, max_lr=None, total_steps=None,
              pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
              three_phase=False):
    if total_steps is None:
        if epochs is None:
            raise ValueError("onecycle needs total_steps, or epochs (and steps_per_epoch) "
                             "to count them; received neither.")
        total_steps = epochs * steps_per_epoch
    return OneCycle(max_lr=learning_rate if max_lr is None else max_lr,
                    total_steps=total_steps, pct_start=pct_start,
                    anneal_strategy=anneal_strategy, div_factor=div_factor,
                    final_div_factor=final_div_factor, three_phase=three_phase)


def _plateau(learning_rate, steps_per_epoch, epochs, **kwargs):
    return ReduceLROnPlateau(learning_rate=learning_rate, **kwargs)


_FACTORIES = {
    "step": (_step, ("step_size", "gamma")),
    "multistep": (_multistep, ("milestones", "gamma")),
    "exponential": (_exponential, ("gamma",)),
    "cosine": (_cosine, ("t_max", "eta_min", "warmup_epochs", "warmup_start_factor")),
    "onecycle": (_onecycle, ("max_lr", "total_steps", "pct_start", "anneal_strategy",
                             "div_factor", "final_div_factor", "three_phase")),
    "plateau": (_plateau, ("monitor", "mode", "factor", "patience", "threshold",
                           "threshold_mode", "cooldown", "min_lr", "eps", "verbose")),
}


# ----------------------------------------------------------------------------
# What Keras lacks


@keras.saving.register_keras_serializable(package="kcnn")
class PerEpoch(keras.optimizers.schedules.LearningRateSchedule):
    """An epoch-counting schedule that holds its rate through each epoch.

    rate(step) = schedule(step // steps_per_epoch): the inner schedule counts
    epochs, so the rate changes at epoch boundaries only, as a torch scheduler
    stepped once per epoch.
    """

    def __init__(self, schedule, steps_per_epoch):
        super().__init__()
        self.schedule = schedule
        self.steps_per_epoch = checks.positive_int("steps_per_epoch", steps_per_epoch)

    def __call__(self, step):
        epoch = ops.floor_divide(ops.convert_to_tensor(step), self.steps_per_epoch)
        return self.schedule(epoch)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "steps_per_epoch": self.steps_per_epoch}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kcnn")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy (Smith and Topin, 2018), as `torch.optim.lr_scheduler.OneCycleLR`.

    From `max_lr / div_factor` up to `max_lr` over the first
    `pct_start * total_steps - 1` steps, then down to
    `max_lr / (div_factor * final_div_factor)` at step `total_steps - 1`,
    each phase annealed by a half cosine (or linearly). `three_phase=True`
    goes back down to the starting rate symmetrically before the final
    annihilation phase. Stepped once per batch; after `total_steps` the rate
    stays at its last value.

    Only the learning rate cycles. torch also cycles the momentum (between
    0.95 and 0.85, inversely to the rate) by default; a Keras optimizer's
    momentum is a constant, so this equals `OneCycleLR(cycle_momentum=False)`.
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        super().__init__()
        self.max_lr = checks.positive_number("max_lr", max_lr)
        self.total_steps = checks.positive_int("total_steps", total_steps)
        if isinstance(pct_start, bool) or not isinstance(pct_start, (int, float)) \
                or not 0 < pct_start < 1:
            raise ValueError(f"pct_start must be a fraction in (0, 1); received "
                             f"pct_start={pct_start!r}.")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear'; received "
                             f"anneal_strategy={anneal_strategy!r}.")
        self.pct_start = float(pct_start)
        self.anneal_strategy = anneal_strategy
        self.div_factor = checks.positive_number("div_factor", div_factor)
        self.final_div_factor = checks.positive_number("final_div_factor", final_div_factor)
        if not isinstance(three_phase, bool):
            raise ValueError(f"three_phase must be True or False; received "
                             f"three_phase={three_phase!r}.")
        self.three_phase = three_phase
        ends = [e for e, _, _ in self.phases()]
        if min(b - a for a, b in zip([0.0] + ends[:-1], ends)) <= 0:
            raise ValueError(
                f"total_steps={total_steps} is too short for pct_start={pct_start}: every "
                f"phase needs at least one step (pct_start * total_steps > 1).")

    def phases(self):
        """(end step, start rate, end rate) of each phase, as torch lays them out."""
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        up = self.pct_start * self.total_steps - 1
        last = float(self.total_steps - 1)
        if self.three_phase:
            return [(up, initial, self.max_lr),
                    (2 * self.pct_start * self.total_steps - 2, self.max_lr, initial),
                    (last, initial, final)]
        return [(up, initial, self.max_lr), (last, self.max_lr, final)]

    def __call__(self, step):
        step = ops.minimum(ops.cast(step, "float32"), self.total_steps - 1)
        phases = self.phases()
        rates, start = [], 0.0
        for end, start_rate, end_rate in phases:
            pct = (step - start) / (end - start)
            if self.anneal_strategy == "cos":
                rates.append(end_rate + (start_rate - end_rate) / 2.0
                             * (ops.cos(math.pi * pct) + 1.0))
            else:
                rates.append(start_rate + (end_rate - start_rate) * pct)
            start = end
        rate = rates[-1]
        for (end, _, _), phase_rate in zip(reversed(phases[:-1]), reversed(rates[:-1])):
            rate = ops.where(step <= end, phase_rate, rate)
        return rate

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "pct_start": self.pct_start, "anneal_strategy": self.anneal_strategy,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor,
                "three_phase": self.three_phase}


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Divide the rate when a metric stops improving, by torch's rules.

    Keras's callback differs from `torch.optim.lr_scheduler.ReduceLROnPlateau`
    in three ways that change when the rate drops: its threshold is absolute
    (torch's default is relative: an improvement beats `best * (1 - threshold)`),
    it reduces after `patience` bad epochs (torch after `patience + 1`), and it
    counts the last cooldown epoch as bad. This subclass keeps Keras's callback
    (monitor, logging of `learning_rate`, verbose messages) and decides as
    torch does, so the same losses give the same rates.

    `learning_rate` is the starting rate for the optimizer (the callback only
    divides what the optimizer has); `kcnn.train` uses it.
    """

    def __init__(self, monitor="val_loss", mode="min", factor=0.1, patience=10,
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8,
                 verbose=0, learning_rate=None):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; received mode={mode!r}.")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs'; received "
                             f"threshold_mode={threshold_mode!r}.")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1); received factor={factor!r}.")
        patience = checks.int_at_least("patience", patience, 0)
        cooldown = checks.int_at_least("cooldown", cooldown, 0)
        for key, value in (("threshold", threshold), ("min_lr", min_lr), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"{key} must be a finite number >= 0; received "
                                 f"{key}={value!r}.")
        super().__init__(monitor=monitor, factor=factor, patience=patience, verbose=verbose,
                         mode=mode, min_delta=threshold, cooldown=cooldown, min_lr=min_lr)
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.eps = float(eps)
        self.learning_rate = (None if learning_rate is None
                              else checks.positive_number("learning_rate", learning_rate))

    def _is_better(self, current):
        if self.best is None:
            return True
        if self.mode == "min":
            bound = (self.best * (1 - self.threshold) if self.threshold_mode == "rel"
                     else self.best - self.threshold)
            return current < bound
        bound = (self.best * (1 + self.threshold) if self.threshold_mode == "rel"
                 else self.best + self.threshold)
        return current > bound

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        current = logs.get(self.monitor)
        if current is None:
            raise ValueError(f"ReduceLROnPlateau monitors {self.monitor!r}, which this run "
                             f"does not log; it logs {', '.join(sorted(logs))}.")
        current = float(current)
        if self._is_better(current):
            self.best, self.wait = current, 0
        else:
            self.wait += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0  # bad epochs in cooldown are not counted
        if self.wait > self.patience:
            old = logs["learning_rate"]
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                optimizer.learning_rate = new
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                          f"to {new}.")
            self.cooldown_counter = self.cooldown
            self.wait = 0


def rates(schedule, steps):
    """The rates a schedule gives at each of `steps` (a numpy vector), float64."""
    steps = np.asarray(steps)
    if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"steps must be a sequence of integer step numbers (e.g. "
                         f"range(100)); received steps={steps!r}.")
    fn = schedule
    if keras.backend.backend() == "jax":  # eager JAX runs each op of each call apart
        import jax

        fn = jax.jit(schedule.__call__)
    return np.array([float(ops.convert_to_numpy(fn(np.int32(s)))) for s in steps])
