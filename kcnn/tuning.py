"""Hyperparameter search with keras-tuner for any kcnn architecture.

    result = kcnn.tuning.tune("lenet5", "digits", tuner="random", max_trials=10,
                              epochs=5, directory="runs/tune/lenet5")
    result.best_hyperparameters     # {"learning_rate": 0.0031, "dropout": 0.12}

    kcnn tune --model lenet5 --data digits --tuner random --max-trials 10 \\
              --epochs 5 --directory runs/tune/lenet5

Each trial is one `kcnn.train` run with the trial's values: the same data
sources, pipelines, recipe, callbacks and strategies as training, so the values
found carry over to the long run. The hyperparameters are `learning_rate`
(log scale) and `dropout`, and on request `optimizer` ("adamw" or "sgd", the
recipes' two optimizers; switching to one keeps its own recipe's weight decay
unless that is tuned too) and `weight_decay` (log scale; coupled L2 for "sgd",
decoupled for "adamw", as in `kcnn.training.Recipe`). Builders with a `dropout`
argument get the trial's rate there (every dropout layer of the builder);
builders without one (LeNet-5, ResNet, DenseNet) get one `Dropout` layer in
front of their classifier, the place modern heads put it.

The search directory holds, next to keras-tuner's own files (`keras_tuner/`):
`search.json` (what was searched), `best_hyperparameters.json`, `trials.csv`
(one row per trial), `tuning.png` (validation accuracy against each tuned
number) and `best_model.keras` (the best values retrained from scratch).
Starting the same search again continues it (keras-tuner's `overwrite=False`);
a larger trial budget runs only the new trials; a different search in a used
directory is refused unless `overwrite=True`.

keras-tuner clears the Keras session before every trial, which drops the global
dtype policy and the `keras.distribution` set-up: the hypermodel puts back the
ones in force when the search started (or those given as `mixed_precision=` and
`strategy=`) at the start of every `build()`.

Distributed tuning is keras-tuner's chief/worker mode: the same command runs in
every process, with KERASTUNER_TUNER_ID ("chief", "tuner0", "tuner1", ...),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set and `directory` shared. The
chief serves the oracle, waits for the workers, then writes the outputs;
workers run trials (see tuning/distributed.py).
"""

import argparse
import contextlib
import csv
import dataclasses
import inspect
import json
import os
import sys
import warnings

import keras
import keras_tuner as kt

from kcnn import registry
from kcnn.data import Source, load
from kcnn.training import RECIPES, distribute, get_recipe, train

OBJECTIVE = "val_top1"  # kcnn.train's validation top-1 accuracy
PROJECT = "keras_tuner"  # keras-tuner's sub-folder of the search directory
TUNERS = ("random", "bayesian", "hyperband")
HYPERPARAMETERS = ("learning_rate", "dropout", "optimizer", "weight_decay")
OPTIMIZERS = ("adamw", "sgd")
DEFAULT_SPACE = {"learning_rate": (1e-4, 1e-1), "dropout": (0.0, 0.6)}
SMALL = 64  # images up to this size are searched at their own size, as kcnn.train does
# The weight decay an optimizer gets when the search switches to it and does not
# tune the decay: its recipe's (decoupled 0.05 for AdamW would be far too strong
# as SGD's coupled L2).
_WEIGHT_DECAY = {RECIPES[name].optimizer: RECIPES[name].weight_decay
                 for name in ("default", "alexnet2012")}

SEARCH_FILE = "search.json"
BEST_FILE = "best_hyperparameters.json"
TRIALS_FILE = "trials.csv"
PLOT_FILE = "tuning.png"
MODEL_FILE = "best_model.keras"
OUTPUTS = (SEARCH_FILE, BEST_FILE, TRIALS_FILE, PLOT_FILE, MODEL_FILE)


class TrialFailed(RuntimeError):
    """A search whose trials failed; the message carries a trial's own error."""


# ----------------------------------------------------------------------------
# The search space


def search_space(space=None):
    """The `keras_tuner.HyperParameters` to search.

    Args:
        space: one of
            - None: `learning_rate` log-uniform in [1e-4, 1e-1] and `dropout`
              uniform in [0, 0.6];
            - a dict of changes to that, from a name in `HYPERPARAMETERS` to
              `(low, high)`, a range (log scale for learning_rate and
              weight_decay when low > 0, linear for dropout); a list, a choice
              among its values; a single value, fixed at that value; or None,
              not tuned (the builder's and the recipe's own value);
            - a `keras_tuner.HyperParameters`: the whole space, as given.

    Returns:
        A `keras_tuner.HyperParameters`.
    """
    hp = kt.HyperParameters()
    if isinstance(space, kt.HyperParameters):
        unknown = sorted(set(h.name for h in space.space) - set(HYPERPARAMETERS))
        if unknown:
            raise ValueError(f"space holds hyperparameters kcnn does not use: {unknown}; "
                             f"allowed: {', '.join(HYPERPARAMETERS)}.")
        for entry in space.space:
            _check_entry(entry)
        hp.merge(space)
        return hp
    if not (space is None or isinstance(space, dict)):
        raise ValueError(f"space must be None, a dict or a keras_tuner.HyperParameters; "
                         f"received space={space!r}.")
    overrides = dict(space or {})
    unknown = sorted(set(overrides) - set(HYPERPARAMETERS), key=str)
    if unknown:
        raise ValueError(f"space has unknown hyperparameters {unknown}; allowed: "
                         f"{', '.join(HYPERPARAMETERS)}.")
    for name, spec in {**DEFAULT_SPACE, **overrides}.items():
        if spec is not None:
            _declare(hp, name, spec)
    return hp


def _declare(hp, name, spec):
    if isinstance(spec, tuple):
        if name == "optimizer":
            raise ValueError(f"space['optimizer'] is a choice: a list such as "
                             f"{list(OPTIMIZERS)}, or one name; received {spec!r}.")
        for value in spec:
            _check_value(name, value)
        if len(spec) != 2 or spec[0] >= spec[1]:
            raise ValueError(f"space[{name!r}] as a range must be (low, high) with low < "
                             f"high; received {spec!r}.")
        log = name in ("learning_rate", "weight_decay") and spec[0] > 0
        hp.Float(name, float(spec[0]), float(spec[1]), sampling="log" if log else "linear")
    elif isinstance(spec, list):
        if not spec:
            raise ValueError(f"space[{name!r}] as a choice needs values; received [].")
        for value in spec:
            _check_value(name, value)
        hp.Choice(name, spec)
    else:
        _check_value(name, spec)
        hp.Fixed(name, spec)


def _check_entry(entry):
    config = entry.get_config()
    values = [config[k] for k in ("min_value", "max_value") if k in config]
    values += list(config.get("values") or [])
    if "value" in config:
        values.append(config["value"])
    for value in values:
        _check_value(entry.name, value)


def _check_value(name, value):
    if name == "optimizer":
        ok = value in OPTIMIZERS
        allowed = f"one of {OPTIMIZERS}"
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        allowed = {"learning_rate": "a number > 0", "dropout": "a rate in [0, 1)",
                   "weight_decay": "a number >= 0"}[name]
        ok = number and {"learning_rate": lambda v: v > 0,
                         "dropout": lambda v: 0 <= v < 1,
                         "weight_decay": lambda v: v >= 0}[name](value)
    if not ok:
        raise ValueError(f"space[{name!r}] must be {allowed} (or a range or list of "
                         f"such); received {value!r}.")


# ----------------------------------------------------------------------------
# The hypermodel


class KcnnHyperModel(kt.HyperModel):
    """A registered kcnn architecture as a keras-tuner `HyperModel`.

    `build(hp)` makes the model with the trial's dropout, under the dtype policy
    and `keras.distribution` given here (keras-tuner clears the session before
    each trial); `fit(hp, model, source, ...)` trains it with `kcnn.train` and
    the trial's learning rate, optimizer and weight decay.

    Args:
        model: a registered model name, e.g. "lenet5".
        builder_kwargs: passed to the builder (classes, input_shape, ...).
        space: see `search_space`.
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


# ----------------------------------------------------------------------------
# The tuner


class _Reporting:
    """Tuner mix-in: shows a failed trial's own error at once and counts trials."""

    trials_run = 0

    def on_trial_end(self, trial):
        self.trials_run += 1
        if trial.status in (kt.engine.trial.TrialStatus.FAILED,
                            kt.engine.trial.TrialStatus.INVALID):
            print(f"kcnn tune: trial {trial.trial_id} failed: {_last_line(trial.message)}",
                  file=sys.stderr, flush=True)
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


# ----------------------------------------------------------------------------
# tune()


@dataclasses.dataclass
class TuneResult:
    """What a search found and wrote.

    Attributes:
        directory: the search directory.
        best_hyperparameters: the best trial's values (None on a worker).
        best_score: its validation top-1 accuracy (None on a worker).
        trials: the rows of trials.csv (empty on a worker).
        trials_run: trials this process ran (0 on a chief; the rest ran before
            or elsewhere).
        model_path: best_model.keras, or None (not retrained, or a worker).
        tuner: the keras-tuner tuner.
    """

    directory: str
    best_hyperparameters: dict | None
    best_score: float | None
    trials: list
    trials_run: int
    model_path: str | None
    tuner: object


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
        directory: the search directory (see the module docstring).
        tuner: "random", "bayesian" or "hyperband".
        epochs: epochs per trial (random, bayesian; default 5). Hyperband sets
            each trial's epochs itself, up to `max_epochs`.
        max_trials: trial budget of random and bayesian (default 10); raise it
            and run again to add trials. Hyperband has none.
        max_epochs, factor: Hyperband's largest epoch count per model (default
            10) and reduction factor (default 3).
        space: the search space (see `search_space`).
        recipe: the training recipe of every trial ("default", "alexnet2012" or
            a `kcnn.training.Recipe`); tuned values replace its own.
        batch_size: global batch size (default: the recipe's).
        image_size: train at this square size (default: small images at their
            own size, others at the builder's default, as `kcnn.train`).
        validation_data: the data that scores trials; default: the source's own
            validation split if it has one, else `validation_split` of the
            training data held out (stratified, seeded).
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
        TrialFailed: no trial completed (or too many failed in a row); the
            message quotes a failed trial's error and traceback.
    """
    builder = registry.get_builder(model)
    tuner, epochs, max_trials, max_epochs, factor = _check_budget(
        tuner, epochs, max_trials, max_epochs, factor)
    for name, value in (("final_epochs", final_epochs), ("image_size", image_size),
                        ("batch_size", batch_size)):
        if value is not None:
            _check_positive(name, value)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; received seed={seed!r}.")
    if mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
        raise ValueError("mixed_precision must be None, 'mixed_float16' or "
                         f"'mixed_bfloat16'; received mixed_precision={mixed_precision!r}.")
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

    train_source, val_source = _sources(data, validation_data, validation_split, seed)
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
            if role == "worker" or not _failed(search.oracle.trials.values()):
                raise
            raise TrialFailed(_failure_message(search)) from e
        if role == "worker":
            return TuneResult(directory, None, None, [], search.trials_run, None, search)
        return _finish(search, hypermodel, directory, train_source, val_source,
                       retrain=retrain, final_epochs=final_epochs or epochs or max_epochs,
                       verbose=verbose)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _check_budget(tuner, epochs, max_trials, max_epochs, factor):
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {', '.join(map(repr, TUNERS))}; "
                         f"received tuner={tuner!r}.")
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
        max_epochs = 10 if max_epochs is None else max_epochs
        factor = 3 if factor is None else factor
        _check_positive("max_epochs", max_epochs)
        _check_positive("factor", factor)
        if factor < 2:
            raise ValueError(f"factor must be an integer >= 2; received factor={factor!r}.")
        return tuner, None, None, max_epochs, factor
    for name, value in (("max_epochs", max_epochs), ("factor", factor)):
        if value is not None:
            raise ValueError(f"{name} applies to tuner='hyperband' only; received "
                             f"{name}={value!r} with tuner={tuner!r}. Use max_trials and "
                             "epochs.")
    epochs = 5 if epochs is None else epochs
    max_trials = 10 if max_trials is None else max_trials
    _check_positive("epochs", epochs)
    _check_positive("max_trials", max_trials)
    return tuner, epochs, max_trials, None, None


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; received {name}={value!r}.")


def _sources(data, validation_data, validation_split, seed):
    """(train, validation) Sources; a validation split is needed to score trials."""
    if isinstance(data, Source):
        if validation_data is None:
            raise ValueError("data is a kcnn.data.Source: give validation_data (another "
                             "Source, or anything kcnn.data.load takes) to score trials.")
        return data, _as_source(validation_data)
    if validation_data is not None:
        return load(data, split="train"), _as_source(validation_data)
    try:  # the source's own validation split (tfds imagenette, a folder with val/)
        return load(data, split="train"), load(data, split="validation")
    except ValueError:
        pass
    if not (isinstance(validation_split, float) and 0 < validation_split < 1):
        raise ValueError(f"data={data!r} has no validation split: validation_split must be "
                         f"a fraction in (0, 1); received validation_split="
                         f"{validation_split!r}.")
    kwargs = dict(validation_split=validation_split, seed=seed)
    return load(data, split="train", **kwargs), load(data, split="validation", **kwargs)


def _as_source(data):
    """Validation data as a Source: its validation split, else test, else its only one."""
    if isinstance(data, Source):
        return data
    for split in ("validation", "test"):
        try:
            return load(data, split=split)
        except ValueError:
            pass
    return load(data, split="train")  # a plain folder or arrays: one split


def _builder_kwargs(builder, source, image_size):
    """classes and input_shape as `kcnn.train` picks them (or at `image_size`)."""
    kwargs = {"classes": source.num_classes}
    if image_size is not None:
        kwargs["input_shape"] = _shape(image_size, image_size, source.channels)
        builder(**kwargs)  # a clear ValueError now if the size is too small
        return kwargs
    image, _ = next(iter(source.dataset.take(1)))
    h, w = int(image.shape[0]), int(image.shape[1])
    if max(h, w) <= SMALL:
        try:
            builder(**kwargs, input_shape=_shape(h, w, source.channels))
            kwargs["input_shape"] = _shape(h, w, source.channels)
        except ValueError:
            pass  # smaller than the family allows: its default size
    return kwargs


def _shape(h, w, c):
    return (h, w, c) if keras.config.image_data_format() == "channels_last" else (c, h, w)


def _describe(source):
    return {"name": source.name, "split": source.split, "examples": source.num_examples,
            "classes": list(source.class_names), "channels": source.channels}


def _claim(directory, description, overwrite, role):
    """Check `directory` holds this search or none; record it there."""
    path = os.path.join(directory, SEARCH_FILE)
    if overwrite and role != "worker":
        for name in OUTPUTS:
            if os.path.exists(os.path.join(directory, name)):
                os.remove(os.path.join(directory, name))
    elif os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
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
                         f"not record ({SEARCH_FILE} is missing). Pass overwrite=True "
                         "(--overwrite) to replace it, or choose another directory.")
    os.makedirs(directory, exist_ok=True)
    _write_json(description, path)


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ----------------------------------------------------------------------------
# Outputs


def _failed(trials):
    return [t for t in trials if t.status in (kt.engine.trial.TrialStatus.FAILED,
                                              kt.engine.trial.TrialStatus.INVALID)]


def _last_line(message):
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no error recorded)"


def _failure_message(search):
    failed = _failed(search.oracle.trials.values())
    trial = failed[-1]
    others = "".join(f"\n  trial {t.trial_id}: {_last_line(t.message)}" for t in failed[:-1])
    return (f"{len(failed)} of {len(search.oracle.trials)} trials failed and none "
            f"completed.{' Other failures:' + others if others else ''}\n"
            f"Trial {trial.trial_id} failed with {_last_line(trial.message)}\n\n"
            f"{(trial.message or '').strip()}")


def _finish(search, hypermodel, directory, train_source, val_source, *, retrain,
            final_epochs, verbose):
    trials = sorted(search.oracle.trials.values(), key=lambda t: t.trial_id)
    completed = [t for t in trials if t.status == kt.engine.trial.TrialStatus.COMPLETED]
    if not completed:
        raise TrialFailed(_failure_message(search))
    for trial in _failed(trials):
        warnings.warn(f"trial {trial.trial_id} failed: {_last_line(trial.message)} "
                      f"(the traceback is in {search.get_trial_dir(trial.trial_id)}/"
                      "trial.json)", stacklevel=3)
    rows = _rows(trials)
    _write_csv(rows, os.path.join(directory, TRIALS_FILE))
    _plot(rows, hypermodel.space, os.path.join(directory, PLOT_FILE))

    best = search.oracle.get_best_trials(1)[0]
    best_values = {k: v for k, v in best.hyperparameters.values.items()
                   if not k.startswith("tuner/")}
    best_path = os.path.join(directory, BEST_FILE)
    record = {"model": hypermodel.name, "objective": OBJECTIVE, "score": best.score,
              "trial_id": best.trial_id, "hyperparameters": best_values,
              "trials": {"total": len(trials), "completed": len(completed),
                         "failed": len(_failed(trials))}}
    # best_model.keras is retrained only when the best trial (or final_epochs)
    # changed since it was written: a finished search run again costs nothing.
    model_path = os.path.join(directory, MODEL_FILE)
    retrained = {"trial_id": best.trial_id, "epochs": final_epochs}
    previous = _read_json(best_path).get("retrained") or {}
    current = (os.path.exists(model_path)
               and {k: previous.get(k) for k in retrained} == retrained)
    if retrain and not current:
        keras.backend.clear_session()
        strategy = search.distribution_strategy
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = hypermodel.build(best.hyperparameters)
        history = hypermodel.train(best.hyperparameters, model, train_source, val_source,
                                   final_epochs, verbose=verbose)
        history.model.save(model_path)
        record["retrained"] = {**retrained,
                               OBJECTIVE: float(history.history[OBJECTIVE][-1])}
    elif current:
        record["retrained"] = previous
    _write_json(record, best_path)
    return TuneResult(directory, best_values, best.score, rows, search.trials_run,
                      model_path if "retrained" in record else None, search)


def _write_json(value, path):
    """Write whole or not at all: chief and workers may read it meanwhile."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(temporary, path)


def _read_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _rows(trials):
    rows = []
    for trial in trials:
        row = {"trial_id": trial.trial_id, "status": trial.status, OBJECTIVE: trial.score,
               "best_epoch": trial.best_step if trial.score is not None else None}
        row.update(trial.hyperparameters.values)
        for name in sorted(trial.metrics.metrics):
            if name != OBJECTIVE:
                row[name] = trial.metrics.get_last_value(name)
        row["error"] = _last_line(trial.message) if trial.message else ""
        rows.append(row)
    return rows


def _write_csv(rows, path):
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    columns.remove("error")
    columns.append("error")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def _plot(rows, space, path):
    """Validation accuracy against each tuned number (learning rate, dropout, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scored = [r for r in rows if r[OBJECTIVE] is not None]
    names = [hp.name for hp in space.space
             if not isinstance(hp, kt.engine.hyperparameters.Fixed)
             and all(isinstance(r.get(hp.name), (int, float))
                     and not isinstance(r.get(hp.name), bool) for r in scored)]
    best = max(scored, key=lambda r: r[OBJECTIVE])
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 4),
                             squeeze=False)
    for ax, name in zip(axes[0], names):
        xs = [r[name] for r in scored]
        ax.scatter(xs, [r[OBJECTIVE] for r in scored], label="trials")
        ax.scatter([best[name]], [best[OBJECTIVE]], marker="*", s=200, color="red",
                   label=f"best (trial {best['trial_id']})")
        if name in ("learning_rate", "weight_decay") and min(xs) > 0:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(name)
        ax.set_ylabel("validation top-1 accuracy")
        ax.legend()
    if not names:
        axes[0][0].text(0.5, 0.5, "no numeric hyperparameter tuned", ha="center")
    fig.suptitle(f"{len(scored)} completed trials")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------
# Command line: `kcnn tune ...` and `python -m kcnn.tuning ...`


def add_commands(commands):
    """Add `tune` to the sub-commands of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "tune", help="search learning rate and dropout with keras-tuner",
        description="Search a model's learning rate and dropout (and optionally optimizer "
        "and weight decay) with keras-tuner; writes best_hyperparameters.json, trials.csv, "
        "tuning.png and best_model.keras to --directory. Run again to continue.")
    _arguments(p)
    p.set_defaults(run=run)


def _arguments(p):
    p.add_argument("--model", required=True, help="builder name, e.g. lenet5")
    p.add_argument("--data", default="digits",
                   help="'digits' (offline, default), a tensorflow-datasets name or an "
                   "image folder, as for train")
    p.add_argument("--tuner", default="random", choices=TUNERS, help="default random")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per trial, random and bayesian (default 5)")
    p.add_argument("--max-trials", type=int, default=None,
                   help="trial budget, random and bayesian (default 10); raise it and run "
                   "again to add trials")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="hyperband: most epochs per model (default 10)")
    p.add_argument("--factor", type=int, default=None,
                   help="hyperband: reduction factor (default 3)")
    p.add_argument("--directory", default="runs/tune",
                   help="search directory (default runs/tune); shared by chief and workers")
    p.add_argument("--space", action="append", default=[], metavar="NAME=SPEC",
                   help="override the search space: learning_rate=1e-4:1e-2 (a range), "
                   "optimizer=adamw,sgd (a choice), dropout=0.3 (fixed), dropout=none "
                   "(not tuned); names: " + ", ".join(HYPERPARAMETERS))
    p.add_argument("--recipe", default="default", help="'default' or 'alexnet2012'")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch size (default: the recipe's)")
    p.add_argument("--image-size", type=int, default=None,
                   help="train at this square size (default: as kcnn train)")
    p.add_argument("--strategy", default=None,
                   help="'mirrored' (TensorFlow) or 'data_parallel' (JAX)")
    p.add_argument("--mixed-precision", default=None,
                   choices=("mixed_float16", "mixed_bfloat16"))
    p.add_argument("--final-epochs", type=int, default=None,
                   help="epochs to retrain the best values (default: --epochs or "
                   "--max-epochs)")
    p.add_argument("--no-retrain", dest="retrain", action="store_false",
                   help="do not retrain the best values into best_model.keras")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another search in --directory (chief only)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args):
    """`kcnn tune`: the parsed arguments in, an exit code out."""
    if args.tuner == "hyperband":
        if args.max_trials is not None:
            raise ValueError("--max-trials does not apply to --tuner hyperband: Hyperband "
                             "has no trial budget; its trials follow from --max-epochs and "
                             "--factor. Drop --max-trials, or use --tuner random or bayesian.")
        if args.epochs is not None:
            raise ValueError("--epochs does not apply to --tuner hyperband: it sets each "
                             "trial's epochs itself, up to --max-epochs. Use --max-epochs "
                             "(and --final-epochs for the retraining).")
    else:
        for flag, value in (("--max-epochs", args.max_epochs), ("--factor", args.factor)):
            if value is not None:
                raise ValueError(f"{flag} applies to --tuner hyperband only; with --tuner "
                                 f"{args.tuner} use --max-trials and --epochs.")
    try:
        result = tune(
            args.model, args.data, directory=args.directory, tuner=args.tuner,
            epochs=args.epochs, max_trials=args.max_trials, max_epochs=args.max_epochs,
            factor=args.factor, space=parse_space(args.space), recipe=args.recipe,
            batch_size=args.batch_size, image_size=args.image_size, strategy=args.strategy,
            mixed_precision=args.mixed_precision, retrain=args.retrain,
            final_epochs=args.final_epochs, overwrite=args.overwrite, seed=args.seed,
            verbose=2)
    except TrialFailed as e:
        print(f"kcnn tune: {e}", file=sys.stderr)
        return 1
    if result.best_hyperparameters is None:
        print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')} ran {result.trials_run} "
              f"trials; the chief writes the results to {result.directory}")
        return 0
    values = ", ".join(f"{k}={_format(v)}" for k, v in result.best_hyperparameters.items())
    print(f"best of {len(result.trials)} trials ({result.trials_run} run now): {values}; "
          f"{OBJECTIVE} {result.best_score:.4f}")
    print(f"wrote {BEST_FILE}, {TRIALS_FILE}, {PLOT_FILE}"
          f"{', ' + MODEL_FILE if result.model_path else ''} to {result.directory}")
    return 0


def _format(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parse_space(specs):
    """`NAME=SPEC` strings (see `kcnn tune --help`) as a `space` dict."""
    space = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or not text:
            raise ValueError(f"--space takes NAME=SPEC, e.g. learning_rate=1e-4:1e-2; "
                             f"received {spec!r}.")
        if text.lower() == "none":
            space[name] = None
        elif ":" in text:
            low, _, high = text.partition(":")
            space[name] = (_number(name, low), _number(name, high))
        elif "," in text:
            space[name] = [_number(name, v) if name != "optimizer" else v
                           for v in text.split(",")]
        else:
            space[name] = text if name == "optimizer" else _number(name, text)
    return space


def _number(name, text):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--space {name}: {text!r} is not a number.") from None


def main(argv=None):
    """`python -m kcnn.tuning ARGS`: `kcnn tune ARGS` without the CLI wiring."""
    parser = argparse.ArgumentParser(prog="python -m kcnn.tuning",
                                     description="kcnn tune: " + __doc__.splitlines()[0])
    _arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as e:
        print(f"kcnn tune: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
