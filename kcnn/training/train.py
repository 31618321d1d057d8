"""`kcnn.train`: a model, a data source and a recipe in; a trained model out.

Reads top to bottom as the path the data takes: the source is loaded and
split, the model built (or taken) and told its preprocessing, the tf.data
pipelines made from that preprocessing, the recipe compiled, and `fit` run
with Keras's own callbacks. Files go to `out_dir` only when one is given.
"""

import csv
import functools
import json
import os

import keras
import numpy as np

from kcnn import _keras_internal, checks, losses, registry, schedules
from kcnn.data import eval_pipeline, load_with_validation, mean_std, train_pipeline
from kcnn.data import augment as augment_ops
from kcnn.data.pipeline import EpochOrder, class_counts
from kcnn.loading import is_keras_path, load_model
from kcnn.models._common import channel_axis, ends_in_softmax, image_shape
from kcnn.training import distribute
from kcnn.training.ema import ModelEMA
from kcnn.training.recipes import get_recipe
from kcnn.training.setup import SMALL, batch_that_fits, build_for_source, model_size

FINISHED = "finished.json"


def train(model, data, *, epochs=None, batch_size=None, recipe="default",
          validation_data=None, validation_split=0.1, strategy=None, out_dir=None,
          overwrite=False, mixed_precision=None, learning_rate=None, clipnorm=None,
          gradient_accumulation_steps=None, schedule=None, loss=None, label_smoothing=None,
          class_weight=None, augment=None, init=None, callbacks=(), seed=0,
          verbose="auto"):
    """Train `model` on `data` with a recipe; return the `keras.callbacks.History`.

    Args:
        model: a Keras model (trained in place), the path of a `.keras` file
            (loaded, then trained), or a registered name such as "lenet5"
            (built with the data's classes and image size).
        data: anything `kcnn.data.load` takes ("digits", a tfds name, an image
            folder, an `(x, y)` tuple of arrays) or a `kcnn.data.Source`.
        epochs, batch_size: default to the recipe's. `batch_size` is global:
            under a strategy, each replica gets `batch_size / replicas`.
        recipe: "default", "alexnet2012" or a `kcnn.training.Recipe`.
        validation_data, validation_split: the validation data, chosen by
            the rule of `kcnn.data.load_with_validation`: `validation_data`
            (like `data`: its "validation" split, else its "test" split, else
            its only one) when given; else `data`'s own validation split (an
            image folder's `val/`, a tfds "validation" split) or, where it has
            none, `validation_split` of it held out (stratified, seeded); none
            when `validation_split` is 0 or None or `data` is a `Source`.
        strategy: None, "mirrored" or a `tf.distribute.Strategy` (TensorFlow),
            "data_parallel" (JAX, `keras.distribution.DataParallel`).
        out_dir: where the logs (CSV, TensorBoard), the best and final models,
            plots and a resumable backup go. A run interrupted and started
            again with the same `out_dir` resumes from its last completed
            epoch; a finished run is never overwritten unless `overwrite=True`.
        mixed_precision: None, "mixed_float16" or "mixed_bfloat16" (needs a
            model name, so the model is built under the policy).
        learning_rate, clipnorm, gradient_accumulation_steps: optimizer options;
            `learning_rate` is the starting (one-cycle: the peak) rate.
        schedule: the learning-rate schedule instead of the recipe's: a name
            of `kcnn.schedules.create` ("step", "multistep", "exponential",
            "cosine", "onecycle", "plateau") or "constant"; a dict with "name"
            and its arguments ({"name": "step", "step_size": 30}); a Keras
            `LearningRateSchedule`; or a `ReduceLROnPlateau` callback. Names
            get this run's learning rate, steps per epoch and epochs (cosine's
            `t_max`, one-cycle's `total_steps`), and plateau the monitored loss.
        loss: "crossentropy" (default) or "focal", a dict with "name" and
            `kcnn.losses.create`'s arguments ({"name": "focal", "gamma": 1.0}),
            or a Keras loss (given one-hot labels unless it is a sparse one).
        label_smoothing: ε for cross-entropy (default: the recipe's).
        class_weight: None, "balanced" (scikit-learn's formula on the training
            labels' counts) or a dict {class index: weight}.
        augment: the recipe's augmentation changed: a dict of
            `kcnn.data.Augment` fields ({"rotation": 15, "mixup": 0.2}), the
            same as an option string ("rotation=15 mixup=0.2"), an `Augment`
            to use as it is, or False for none.
        init: with a model name, the builder's weight initialisation
            ("keras", "torchvision", AlexNet's "paper"); None: the builder's
            default.
        callbacks: more Keras callbacks.
        seed: seeds weights, shuffling and augmentation; each epoch's order
            and augmentation are drawn from (seed, epoch), whatever the
            strategy, and a resumed run sees the order it would have seen.

    Returns:
        The `History`; `history.model` is the trained model, whose metadata
        now holds the class names and the preprocessing it was trained with.
    """
    recipe = get_recipe(recipe)
    if epochs is not None:
        epochs = checks.positive_int("epochs", epochs)
    if batch_size is not None:
        batch_size = checks.positive_int("batch_size", batch_size)
    checks.positive_number("clipnorm", clipnorm, optional=True)
    checks.positive_int("gradient_accumulation_steps", gradient_accumulation_steps,
                        optional=True)
    loss_name, loss_options = _named(loss, "loss", losses.NAMES, keras.losses.Loss)
    schedule_name, schedule_options = _named(
        schedule, "schedule", schedules.NAMES + ("constant",),
        (keras.optimizers.schedules.LearningRateSchedule, keras.callbacks.Callback))
    if loss is None:
        loss_name = "crossentropy"
    if label_smoothing is not None:
        losses.check_label_smoothing(label_smoothing)
    if not (class_weight is None or isinstance(class_weight, dict)
            or isinstance(class_weight, str) and class_weight == "balanced"):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict {{class index: "
                         f"weight}}; received class_weight={class_weight!r}.")
    augment_ops.resolve(augment)  # bad options fail now, not after loading the data
    if mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
        raise ValueError("mixed_precision must be None, 'mixed_float16' or "
                         f"'mixed_bfloat16'; received mixed_precision={mixed_precision!r}.")
    if mixed_precision and not isinstance(model, str):
        raise ValueError("mixed_precision needs the model by name (e.g. 'alexnet') so that "
                         "it is built under the policy; received a built model.")
    checks.one_of("overwrite", overwrite, (False, True))
    checks.one_of("verbose", verbose, ("auto", 0, 1, 2, False, True))
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(f"callbacks must hold keras.callbacks.Callback instances; "
                             f"received {callback!r} in callbacks.")
    placement = distribute.resolve(strategy)
    finished = _prepare_out_dir(out_dir, overwrite)
    keras.utils.set_random_seed(seed)

    train_source, val_source = load_with_validation(
        data, validation_data=validation_data, validation_split=validation_split, seed=seed)
    # Each epoch's order and augmentation come from (seed, epoch): the same on
    # one device and on several replicas, and after a resume (made outside the
    # strategy's scope: a plain host variable, not a mirrored one).
    epoch_order = EpochOrder()
    previous_policy = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(mixed_precision)
    try:
        with placement.scope():
            model = _model(model, train_source, placement, init,
                           any_size=recipe.train_crop is not None)
    finally:
        keras.config.set_dtype_policy(previous_policy)  # the policy is for this model only
    with placement.scope():
        small_gray = train_source.channels == 1 and model_size(model) <= SMALL
        recipe = recipe.for_data(small_grayscale=small_gray)
        train_crop = _train_crop(recipe, model)
        epochs = recipe.epochs if epochs is None else epochs
        batch_size = batch_that_fits(recipe.batch_size if batch_size is None else batch_size,
                                     train_source.num_examples, placement.replicas,
                                     data="the training data")
        preprocessing = dict(model.metadata.get("preprocessing") or {})
        if small_gray:
            mean, std = mean_std(train_source)
            preprocessing.update(mean=[float(v) for v in mean], std=[float(v) for v in std])
        if train_crop is not None and recipe.eval_resize:
            preprocessing["resize"] = recipe.eval_resize
        # A dict argument: Keras tracks a metadata dict set on a model as a
        # TrackedDict, whose update takes no keywords.
        model.metadata.update({"preprocessing": preprocessing,
                               "class_names": list(train_source.class_names)})

        augmentation = augment_ops.resolve(
            augment, recipe.augmentation(small_grayscale=small_gray,
                                         channels=model.metadata.get("channels", 3)))
        smoothing = recipe.label_smoothing if label_smoothing is None else label_smoothing
        one_hot = losses.needs_one_hot(loss_name or loss, smoothing) or augmentation.mixes
        weights = None if class_weight is None else losses.class_weight(
            class_weight, class_counts(train_source))
        channels = model.metadata.get("channels")
        # Small images fit in memory decoded; large ones are decoded each epoch.
        cache = model_size(model) <= SMALL
        train_ds = train_pipeline(
            train_source, preprocessing, batch_size=batch_size, seed=seed,
            augment=augmentation, one_hot=one_hot, num_classes=_num_classes(model),
            channels=channels, cache=cache, class_weight=weights, epoch_order=epoch_order,
            crop_size=train_crop)
        val_ds = None if val_source is None else eval_pipeline(
            val_source, preprocessing, one_hot=one_hot, num_classes=_num_classes(model),
            channels=channels, cache=cache,
            **_even_batches(val_source, batch_size, placement.replicas))
        steps = max(train_source.num_examples // batch_size, 1)
        monitor = "val_loss" if val_ds is not None else "loss"
        rate, rate_callbacks = _schedule(
            schedule, schedule_name, schedule_options, recipe, steps_per_epoch=steps,
            epochs=epochs, learning_rate=learning_rate, monitor=monitor,
            batch_size=batch_size)
        model.compile(
            optimizer=recipe.make_optimizer(
                learning_rate=rate, clipnorm=clipnorm,
                gradient_accumulation_steps=gradient_accumulation_steps, model=model),
            loss=_loss(model, loss_name or loss, loss_options, smoothing, one_hot),
            metrics=_metrics(one_hot, _num_classes(model)))
    ema = None if not recipe.ema_decay else ModelEMA(
        ModelEMA.adjusted_decay(recipe.ema_decay, recipe.ema_steps, batch_size, epochs),
        steps=recipe.ema_steps, warmup_epochs=recipe.warmup_epochs)
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose, shuffle=False,
        callbacks=[epoch_order] + rate_callbacks + _callbacks(recipe, monitor, out_dir, ema)
        + callbacks)
    if history.epoch and not history.history.get("loss"):  # unknown size, less than a batch
        raise ValueError(
            f"data gave no batch of batch_size={batch_size} (batches drop their "
            f"remainder): the model took no training step. Use a smaller batch_size or "
            "more data.")
    if out_dir:
        _finish_run(model, history, out_dir, finished, val_ds, steps)
    return history


def _even_batches(source, batch_size, replicas):
    """Validation batching; under several replicas, batches that split evenly.

    tf.distribute fails on a last batch that does not divide among replicas, so
    there the remainder (fewer than `replicas` examples) is dropped, and the
    batch shrinks to what the validation data can fill.
    """
    if replicas == 1:
        return {"batch_size": batch_size}
    size = batch_size // replicas * replicas
    size = batch_that_fits(max(size, replicas), source.num_examples, replicas,
                           data="the validation data")
    return {"batch_size": size, "drop_remainder": True}


def _prepare_out_dir(out_dir, overwrite):
    if not out_dir:
        return None
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"out_dir must be a directory (it is made if missing); received "
                         f"out_dir={out_dir!r}, which is a file.")
    finished = os.path.join(out_dir, FINISHED)
    if os.path.exists(finished) and not overwrite:
        raise ValueError(
            f"out_dir={out_dir!r} holds a finished run ({FINISHED}); pass overwrite=True "
            f"to train again into it, or choose another out_dir."
        )
    if os.path.exists(finished):
        os.remove(finished)
    os.makedirs(out_dir, exist_ok=True)
    return finished


def _model(model, source, placement, init=None, any_size=False):
    """The model to train, built (by name) for the data; `any_size`: for any
    input size where the images are large (a recipe that trains and
    evaluates at different sizes)."""
    if is_keras_path(model):
        model = load_model(model)
    if isinstance(model, str):
        kwargs = {} if init is None else {"init": init}
        if any_size:
            kwargs["input_shape"] = image_shape(None, None, source.channels)
        try:
            return build_for_source(registry.get_builder(model), source, **kwargs)[0]
        except ValueError as e:
            if not any_size:
                raise
            raise ValueError(
                f"this recipe trains and evaluates at different sizes, which needs {model} "
                f"built for any input size, and {model} cannot be: {e} Train it with a "
                "recipe whose train_crop is None, e.g. dataclasses.replace(recipe, "
                "train_crop=None, eval_resize=None).") from None
    if init is not None:
        raise ValueError(
            f"init applies to a model built by name; received init={init!r} with "
            f"the built model {getattr(model, 'name', model)!r}."
        )
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a Keras model or a registered model name; "
                         f"received model={model!r}.")
    if _num_classes(model) != source.num_classes:
        raise ValueError(
            f"model {model.name!r} has {_num_classes(model)} outputs but the data has "
            f"{source.num_classes} classes; build it with classes={source.num_classes}."
        )
    if not hasattr(model, "metadata"):
        model.metadata = {}
    return placement.adopt(model)


def _train_crop(recipe, model):
    """The recipe's training crop for `model`, or None (the model's input size).

    Models trained at their data's own small size (digits, CIFAR: at most
    SMALL pixels) keep it; a large model must take any input size to train at
    one size and evaluate at another.
    """
    if recipe.train_crop is None:
        return None
    shape = tuple(model.inputs[0].shape[1:])
    spatial, channels = (shape[:-1], shape[-1]) if channel_axis() == -1 else (shape[1:],
                                                                             shape[0])
    if None in spatial:
        return recipe.train_crop
    if max(spatial) <= SMALL:
        return None
    raise ValueError(
        f"recipe {recipe.name!r} trains at {recipe.train_crop}x{recipe.train_crop} and "
        f"evaluates at the model's size, which needs a model built for any input size; "
        f"{model.name!r} takes {shape} only. Build it with "
        f"input_shape={image_shape(None, None, channels)} "
        f"(a model with a pooling head), pass the model by name, or use "
        f"dataclasses.replace(recipe, train_crop=None, eval_resize=None).")


def _num_classes(model):
    return int(model.outputs[0].shape[-1])


def _named(spec, what, names, types):
    """(name, options) of a name or {"name": ..., **options}; (None, {}) otherwise."""
    if spec is None or isinstance(spec, types):
        return None, {}
    if isinstance(spec, dict) and "name" in spec:
        options = dict(spec)
        spec = options.pop("name")
    else:
        options = {}
    if isinstance(spec, str) and spec in names:
        return spec, options
    kinds = {"loss": "a keras.losses.Loss",
             "schedule": "a keras LearningRateSchedule or a ReduceLROnPlateau callback"}
    raise ValueError(f"{what} must be one of {', '.join(map(repr, names))}, a dict with "
                     f"'name' and its arguments, {kinds[what]}, or None; received "
                     f"{what}={spec!r}.")


def _schedule(spec, name, options, recipe, *, steps_per_epoch, epochs, learning_rate,
              monitor, batch_size):
    """The optimizer's rate (a number or a schedule) and the callbacks it needs."""
    rate = recipe.rate_for_batch(batch_size) if learning_rate is None else learning_rate
    if isinstance(spec, keras.optimizers.schedules.LearningRateSchedule):
        return spec, []
    if isinstance(spec, keras.callbacks.Callback):
        start = getattr(spec, "learning_rate", None)
        return (rate if start is None else start), [spec]
    if name is None:
        made = recipe.make_schedule(steps_per_epoch=steps_per_epoch, epochs=epochs,
                                    learning_rate=rate, monitor=monitor)
    elif name == "constant":
        if options:
            raise ValueError(f"schedule 'constant' takes no arguments; received {options}.")
        made = rate
    else:
        defaults = {"learning_rate": rate, "steps_per_epoch": steps_per_epoch,
                    "epochs": epochs}
        if name == "plateau":
            defaults["monitor"] = monitor
        made = schedules.create(name, **{**defaults, **options})
    if isinstance(made, keras.callbacks.Callback):
        return made.learning_rate, [made]
    return made, []


def _loss(model, loss, options, label_smoothing, one_hot):
    if not isinstance(loss, str):
        return loss
    return losses.create(loss, one_hot=one_hot,
                         from_logits=not ends_in_softmax(model),
                         label_smoothing=label_smoothing, **options)


def _metrics(one_hot, classes):
    k = min(5, classes)
    if one_hot:
        return [keras.metrics.CategoricalAccuracy(name="top1"),
                keras.metrics.TopKCategoricalAccuracy(k, name="top5")]
    return [keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(k, name="top5")]


def _callbacks(recipe, monitor, out_dir, ema=None):
    """The recipe's callbacks and, with `out_dir`, the files'.

    With a moving average of the weights (`ema`), validation measures the
    average, and `best.keras` holds it: the weights the best validation score
    was measured with (as torchvision saves `model_ema`). The average is
    backed up with the run (`backup/ema.npz`), so that a resumed run keeps it.
    """
    callbacks = [] if ema is None else [ema]
    if recipe.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=recipe.early_stopping_patience,
            restore_best_weights=True))
    if out_dir:
        checkpoint = keras.callbacks.ModelCheckpoint if ema is None else functools.partial(
            _AveragedCheckpoint, ema)
        backup = os.path.join(out_dir, "backup")
        callbacks += [] if ema is None else [_AverageBackup(ema, os.path.join(backup,
                                                                                "ema.npz"))]
        callbacks += [
            keras.callbacks.BackupAndRestore(backup),
            checkpoint(
                os.path.join(out_dir, "best.keras"), monitor=monitor, save_best_only=True,
                initial_value_threshold=_best_before_resume(out_dir, monitor)),
            keras.callbacks.CSVLogger(os.path.join(out_dir, "log.csv"), append=True),
            keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard")),
        ]
    return callbacks


class _AveragedCheckpoint(keras.callbacks.ModelCheckpoint):
    """A `ModelCheckpoint` that saves the moving average `ema` of the weights."""

    def __init__(self, ema, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema = ema

    def on_epoch_end(self, epoch, logs=None):
        with self.ema.averaged():
            super().on_epoch_end(epoch, logs)


class _AverageBackup(keras.callbacks.Callback):
    """Keeps the state of the moving average `ema` in `path` after each epoch,
    beside `BackupAndRestore`'s backup (deleted with it when the run ends), and
    gives it back to `ema` when a run resumes."""

    def __init__(self, ema, path):
        super().__init__()
        self.ema = ema
        self.path = path

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            with np.load(self.path) as saved:
                count = int(saved["count"])
                self.ema.set_state({"average": [saved[f"a{i}"] for i in range(count)],
                                    "updates": int(saved["updates"])})

    def on_epoch_end(self, epoch, logs=None):
        state = self.ema.get_state()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        partial = self.path + ".partial.npz"
        np.savez(partial, count=len(state["average"]), updates=state["updates"],
                 **{f"a{i}": a for i, a in enumerate(state["average"])})
        os.replace(partial, self.path)  # never half a file


def _best_before_resume(out_dir, monitor):
    """The best (lowest) `monitor` of the epochs a resumed run already trained, else None.

    Keras's `ModelCheckpoint` starts each `fit` with no best value, so after a
    restart its first epoch would replace `best.keras` even when it is worse
    than the best epoch before the interruption. The run resumes exactly when
    `BackupAndRestore`'s backup is there; its epochs so far are the CSV log's
    rows from its last epoch 0 (as in `_whole_run`). `monitor` is a loss.
    """
    log = os.path.join(out_dir, "log.csv")
    if not (os.path.isdir(os.path.join(out_dir, "backup")) and os.path.exists(log)):
        return None
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    first = max((i for i, row in enumerate(rows) if row.get("epoch") == "0"), default=0)
    values = [float(row[monitor]) for row in rows[first:] if row.get(monitor)]
    values = [v for v in values if np.isfinite(v)]
    return min(values) if values else None


def _finish_run(model, history, out_dir, finished, val_ds, steps_per_epoch):
    model.save(os.path.join(out_dir, "model.keras"))
    whole = _whole_run(history, os.path.join(out_dir, "log.csv"))
    summary = {"epochs": len(whole.get("loss", history.epoch)),
               "history": {k: [float(v) for v in vs] for k, vs in whole.items()}}
    with open(os.path.join(out_dir, "history.json"), "w") as f:
        json.dump(summary, f, indent=1)
    try:
        from kcnn.training import plots

        plots.training_curves(whole, os.path.join(out_dir, "curves.png"))
        if val_ds is not None:
            from kcnn.training.evaluate import confusion

            matrix = confusion(model, val_ds)
            plots.confusion_matrix(matrix, model.metadata["class_names"],
                                   os.path.join(out_dir, "confusion.png"))
        plots.first_layer_filters(model, os.path.join(out_dir, "filters.png"))
        steps, rates = _rates(model.optimizer, whole, steps_per_epoch)
        plots.learning_rate(steps, rates, os.path.join(out_dir, "learning_rate.png"),
                            steps_per_epoch=steps_per_epoch)
    finally:
        with open(finished, "w") as f:
            json.dump({"epochs": summary["epochs"]}, f)


def _whole_run(history, log):
    """The per-epoch history of the whole run in `out_dir`.

    A run resumed after an interruption fits only the epochs left, so its
    `history` starts at the epoch it resumed at; the epochs before come from
    the CSV log, from its last epoch 0 (earlier rows belong to a run that
    `overwrite=True` replaced).
    """
    start = history.epoch[0] if history.epoch else 0
    if start == 0 or not os.path.exists(log):
        return history.history
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    first = max((i for i, row in enumerate(rows) if row.get("epoch") == "0"), default=0)
    before = [row for row in rows[first:] if int(row["epoch"]) < start]
    return {k: [float(row.get(k) or "nan") for row in before] + list(vs)
            for k, vs in history.history.items()}


def _rates(optimizer, history, steps_per_epoch, points=500):
    """(steps, rates) the run used: a schedule evaluated at up to `points`
    steps; a constant or plateau-divided rate once per epoch."""
    total = max(int(keras.ops.convert_to_numpy(optimizer.iterations)), 1)
    epochs = max(len(history.get("loss", [])), 1)
    schedule = _keras_internal.learning_rate_setting(optimizer)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        steps = np.unique(np.linspace(0, total - 1, min(points, total)).round().astype(int))
        return steps, schedules.rates(schedule, steps)
    per_epoch = history.get("learning_rate")
    if not per_epoch:
        per_epoch = [float(keras.ops.convert_to_numpy(optimizer.learning_rate))] * epochs
    steps = np.arange(len(per_epoch)) * steps_per_epoch
    return steps, np.asarray(per_epoch, np.float64)
