"""The search: `tune()`, resuming a search, and keras-tuner's chief and workers.

`tune` checks its arguments, loads the data once, builds the hypermodel
(`kcnn.tuning.hypermodel`) over the space (`kcnn.tuning.space`), runs
keras-tuner, and has `kcnn.tuning.report` write the outputs.

Starting the same search again continues it (keras-tuner's `overwrite=False`);
a larger trial budget runs only the new trials; a different search in a used
directory is refused unless `overwrite=True`: `search.json` records what was
searched.

Distributed tuning is keras-tuner's chief/worker mode: the same call runs in
every process, with KERASTUNER_TUNER_ID ("chief", "tuner0", "tuner1", ...),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set and `directory` shared. The
chief serves the oracle, waits for the workers, then writes the outputs;
workers run trials (see tuning/distributed.py).
"""

import dataclasses
import json
import os
import sys

import keras
import keras_tuner as kt

from kcnn import checks, registry
from kcnn.data import load_with_validation
from kcnn.models._common import image_shape
from kcnn.training import distribute, get_recipe
from kcnn.training.setup import build_for_source
from kcnn.tuning import report
from kcnn.tuning.hypermodel import OBJECTIVE, KcnnHyperModel
from kcnn.tuning.space import search_space

PROJECT = "keras_tuner"  # keras-tuner's sub-folder of the search directory
TUNERS = ("random", "bayesian", "hyperband")
MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")


def tune(model, data, *, directory, tuner="random", epochs=None, max_trials=None,
         max_epochs=None, factor=None, space=None, recipe="default", batch_size=None,
         image_size=None, validation_data=None, validation_split=0.1, strategy=None,
         mixed_precision=None, retrain=True, final_epochs=None, overwrite=False,
         callbacks=(), seed=0, verbose="auto"):
    """Search the learning rate and dropout (and more) of a kcnn architecture.

    Args:
        model: a registered model name, e.g. "resnet18".
        data: anything `kcnn.data.load` takes ("digits", a tfds name, an image
            folder, `(x, y)` arrays) or a `kcnn.data.Source` (then give
            `validation_data` too).
        directory: the search directory (see `kcnn.tuning.report` for what it
            holds).
        tuner: "random", "bayesian" or "hyperband".
        epochs: epochs per trial (random, bayesian; default 5). Hyperband sets
            each trial's epochs itself, up to `max_epochs`.
        max_trials: trial budget of random and bayesian (default 10); raise it
            and run again to add trials. Hyperband has none.
        max_epochs, factor: Hyperband's largest epoch count per model (default
            10) and reduction factor (default 3).
        space: the search space (see `kcnn.tuning.search_space`).
        recipe: the training recipe of every trial ("default", "alexnet2012" or
            a `kcnn.training.Recipe`); tuned values replace its own.
        batch_size: global batch size (default: the recipe's).
        image_size: train at this square size (default: as `kcnn.train`, see
            `kcnn.training.setup.build_for_source`: images of at most 64 pixels
            a side at their own size where the family allows it, others at the
            builder's default size).
        validation_data, validation_split: the data that scores trials, chosen
            by the rule of `kcnn.data.load_with_validation`, the same as
            `kcnn.train`'s: `validation_data` (its "validation" split, else its
            "test" split, else its only one) when given; else `data`'s own
            validation split, or `validation_split` of it held out (stratified,
            seeded). A search needs validation data: `validation_split` 0 or
            None, or `data` a `Source`, without `validation_data` is refused.
        strategy: None, "mirrored" or a `tf.distribute.Strategy` (TensorFlow:
            every trial runs under it), "data_parallel" (JAX: re-applied in every
            trial). Torch has no multi-device training in Keras: refused. On
            JAX, a `keras.distribution` set before the call is re-applied too.
        mixed_precision: None (the global policy in force now), "mixed_float16"
            or "mixed_bfloat16".
        retrain: train the best values from scratch into best_model.keras.
        final_epochs: epochs of that run (default `epochs`, or `max_epochs`).
        overwrite: start afresh in a directory that holds another search.
        callbacks: Keras callbacks for every trial.
        seed: seeds the search and every trial's weights and data order.
        verbose: Keras's verbosity for the trials.

    Returns:
        A `TuneResult`.

    Raises:
        ValueError: an argument out of range, a budget argument the tuner does
            not take, or a directory that holds another search.
        TrialFailed: no trial completed (or too many failed in a row); the
            message quotes a failed trial's error and traceback.
    """
    builder = registry.get_builder(model)
    tuner, epochs, max_trials, max_epochs, factor = _check_budget(
        tuner, epochs, max_trials, max_epochs, factor)
    final_epochs = checks.positive_int("final_epochs", final_epochs, optional=True)
    image_size = checks.positive_int("image_size", image_size, optional=True)
    batch_size = checks.positive_int("batch_size", batch_size, optional=True)
    seed = checks.int_at_least("seed", seed, 0)
    checks.one_of("mixed_precision", mixed_precision, MIXED_PRECISION)
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ValueError(f"directory must be a folder path; received directory={directory!r}.")
    directory = os.fspath(directory)
    role = _role()
    if role == "worker" and overwrite:
        raise ValueError(
            f"overwrite=True on a worker (KERASTUNER_TUNER_ID="
            f"{os.environ['KERASTUNER_TUNER_ID']!r}) would delete the shared results; "
            "pass it to the chief only.")
    space = search_space(space)
    backend = keras.backend.backend()
    if strategy is not None and backend == "torch":
        raise ValueError(
            f"strategy={strategy!r}: Keras {keras.__version__} has no multi-device "
            "training on the torch backend. Tune with strategy=None (one device), or on "
            "TensorFlow (strategy='mirrored') or JAX (strategy='data_parallel').")
    placement = distribute.resolve(strategy)
    distribution_strategy = trial_strategy = distribution = None
    if isinstance(placement, distribute.TFStrategy):
        distribution_strategy = trial_strategy = placement.strategy
    elif isinstance(placement, distribute.JaxDataParallel):
        distribution, trial_strategy = placement.distribution, "data_parallel"
    elif backend == "jax":
        distribution = keras.distribution.distribution()  # the user's own, if any
    policy = mixed_precision or keras.config.dtype_policy().name

    train_source, val_source = load_with_validation(
        data, validation_data=validation_data, validation_split=validation_split,
        seed=seed, required=True)
    builder_kwargs = _builder_kwargs(builder, train_source, image_size)
    description = {
        "model": model, "builder_kwargs": builder_kwargs,
        "data": _describe(train_source), "validation_data": _describe(val_source),
        "tuner": tuner, "epochs": epochs, "max_epochs": max_epochs, "factor": factor,
        "space": space.get_config(), "recipe": dataclasses.asdict(get_recipe(recipe)),
        "batch_size": batch_size, "dtype_policy": policy, "seed": seed,
        "objective": OBJECTIVE,
    }
    description = json.loads(json.dumps(description, default=str))
    _claim(directory, description, overwrite, role)

    previous_policy = keras.config.dtype_policy()
    hypermodel = KcnnHyperModel(
        model, builder_kwargs=builder_kwargs, space=space, recipe=recipe,
        batch_size=batch_size, strategy=trial_strategy, dtype_policy=policy,
        distribution=distribution, seed=seed)
    try:
        search = _make_tuner(
            tuner, hypermodel, max_trials=max_trials, max_epochs=max_epochs, factor=factor,
            directory=directory, overwrite=overwrite and role != "worker",
            distribution_strategy=distribution_strategy, seed=seed)
        try:
            search.search(train_source, validation_data=val_source, epochs=epochs,
                          callbacks=list(callbacks), verbose=verbose)
        except RuntimeError as e:
            if role == "worker" or not any(
                    report.is_failed(t) for t in search.oracle.trials.values()):
                raise
            raise report.TrialFailed(report.failure_message(search)) from e
        if role == "worker":
            return report.TuneResult(directory, None, None, [], search.trials_run, None,
                                     search)
        return report.finish(
            search, hypermodel, directory, train_source, val_source, retrain=retrain,
            final_epochs=final_epochs or epochs or max_epochs, verbose=verbose)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _check_budget(tuner, epochs, max_trials, max_epochs, factor):
    """`(tuner, epochs, max_trials, max_epochs, factor)` checked, with defaults filled.

    Each tuner takes its own budget: random and bayesian `max_trials` and
    `epochs`, Hyperband `max_epochs` and `factor`; the other pair is refused.
    """
    checks.one_of("tuner", tuner, TUNERS)
    if tuner == "hyperband":
        if max_trials is not None:
            raise ValueError(
                "max_trials does not apply to tuner='hyperband': Hyperband has no trial "
                "budget, its trials follow from max_epochs and factor. Drop max_trials, "
                "or use tuner='random' or 'bayesian'.")
        if epochs is not None:
            raise ValueError(
                "epochs does not apply to tuner='hyperband': it sets each trial's epochs "
                "itself, up to max_epochs. Drop epochs (final_epochs sets the retraining).")
        max_epochs = checks.positive_int("max_epochs", 10 if max_epochs is None else max_epochs)
        factor = checks.int_at_least("factor", 3 if factor is None else factor, 2)
        return tuner, None, None, max_epochs, factor
    for name, value in (("max_epochs", max_epochs), ("factor", factor)):
        if value is not None:
            raise ValueError(f"{name} applies to tuner='hyperband' only; received "
                             f"{name}={value!r} with tuner={tuner!r}. Use max_trials and "
                             "epochs.")
    epochs = checks.positive_int("epochs", 5 if epochs is None else epochs)
    max_trials = checks.positive_int("max_trials", 10 if max_trials is None else max_trials)
    return tuner, epochs, max_trials, None, None


def _builder_kwargs(builder, source, image_size):
    """The builder's classes and input_shape: as `kcnn.train` picks them, or at `image_size`.

    Building once here also raises a clear ValueError now, before any trial,
    when the size is too small for the family.
    """
    if image_size is None:
        return build_for_source(builder, source)[1]
    kwargs = {"classes": source.num_classes,
              "input_shape": image_shape(image_size, image_size, source.channels)}
    builder(**kwargs)
    return kwargs


def _describe(source):
    return {"name": source.name, "split": source.split, "examples": source.num_examples,
            "classes": list(source.class_names), "channels": source.channels}


class _Reporting:
    """Tuner mix-in: shows a failed trial's own error at once and counts trials."""

    trials_run = 0

    def on_trial_end(self, trial):
        self.trials_run += 1
        if report.is_failed(trial):
            print(f"kcnn tune: trial {trial.trial_id} failed: "
                  f"{report.last_line(trial.message)}", file=sys.stderr, flush=True)
        super().on_trial_end(trial)


_TUNER_CLASSES = {
    "random": kt.RandomSearch,
    "bayesian": kt.BayesianOptimization,
    "hyperband": kt.Hyperband,
}


def _make_tuner(kind, hypermodel, *, max_trials, max_epochs, factor, directory, overwrite,
                distribution_strategy, seed):
    base = _TUNER_CLASSES[kind]
    cls = type(f"Kcnn{base.__name__}", (_Reporting, base), {})
    budget = ({"max_epochs": max_epochs, "factor": factor} if kind == "hyperband"
              else {"max_trials": max_trials})
    # keras-tuner takes seed 0 for "no seed" (random): shift it.
    return cls(hypermodel=hypermodel, objective=kt.Objective(OBJECTIVE, "max"),
               directory=directory, project_name=PROJECT, overwrite=overwrite,
               distribution_strategy=distribution_strategy, seed=seed + 1, **budget)


def _role():
    """"chief", "worker" or None (a search on its own), from keras-tuner's env vars."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if not os.environ.get(name):
            raise ValueError(f"KERASTUNER_ORACLE_IP is set (distributed tuning) but {name} "
                             "is not: set KERASTUNER_TUNER_ID ('chief' or 'tuner0', "
                             "'tuner1', ...) and KERASTUNER_ORACLE_PORT in every process.")
    # keras-tuner's own rule: an id containing "chief" serves the oracle.
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def _claim(directory, description, overwrite, role):
    """Check `directory` holds this search or none; record it there."""
    path = os.path.join(directory, report.SEARCH_FILE)
    if overwrite and role != "worker":
        for name in report.OUTPUTS:
            if os.path.exists(os.path.join(directory, name)):
                os.remove(os.path.join(directory, name))
    elif os.path.exists(path):
        recorded = report.read_json(path)
        differences = [
            f"{key}: {_short(recorded.get(key))} there, {_short(description.get(key))} now"
            for key in sorted(set(recorded) | set(description))
            if recorded.get(key) != description.get(key)]
        if differences:
            raise ValueError(
                f"directory={directory!r} holds a different search ({'; '.join(differences)})"
                ". Pass overwrite=True (--overwrite) to replace it, or choose another "
                "directory.")
        return
    elif os.path.isdir(os.path.join(directory, PROJECT)):
        raise ValueError(f"directory={directory!r} holds a keras-tuner search that kcnn did "
                         f"not record ({report.SEARCH_FILE} is missing). Pass overwrite=True "
                         "(--overwrite) to replace it, or choose another directory.")
    os.makedirs(directory, exist_ok=True)
    report.write_json(description, path)


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
