"""Fine-tuning: stages joining training on a schedule, and the one-call path.

    history = kcnn.transfer.fine_tune("runs/train/model.keras", "my_images/")
    model = history.model            # new head for my_images' classes

`fit_gradually` is the loop under it for models and datasets you prepared
yourself: one compile and `fit` per phase, since Keras 3 reads `trainable`
when the training step is compiled, with a `DiscriminativeOptimizer` that
keeps the state of the weights already training across phases.
"""

import keras

from kcnn import checks
from kcnn.data import Augment, eval_pipeline, load_with_validation, train_pipeline
from kcnn.loading import as_model
from kcnn.models import _common
from kcnn.training.setup import SMALL, batch_that_fits, model_size
from kcnn.transfer.head import outputs_probabilities, replace_classifier
from kcnn.transfer.optimizer import DiscriminativeOptimizer, discriminative_optimizer
from kcnn.transfer.stages import gradual_schedule, set_trainable, stages

UNFREEZE = ("gradual", "all", "none")


def fit_gradually(model, x, *, epochs, schedule, optimizer, loss, metrics=None,
                  validation_data=None, callbacks=(), freeze_batch_norm=False,
                  verbose="auto", **fit_kwargs):
    """`model.fit` with backbone stages joining training on a schedule.

    The head trains from epoch 0; stage `s` from epoch `schedule[s]`; stages
    not in `schedule` stay frozen (batch norm in inference mode). Each phase
    (a run of epochs with the same stages training) sets the `trainable`
    flags, compiles and fits from its first epoch (`initial_epoch`) to the
    next phase's. The optimizer carries over: its state for weights already
    training, its step count and so its learning-rate schedule. After the
    call the flags are those of the last phase.

    Args:
        model: a functional Keras model (see `kcnn.transfer.stages`).
        x: training data, as `model.fit` takes it (a tf.data pipeline, ...).
        epochs: the total number of epochs.
        schedule: dict stage name -> first epoch (0-based) it trains, e.g.
            from `kcnn.transfer.gradual_schedule(model, epochs)`; {} trains
            the head only.
        optimizer: a `DiscriminativeOptimizer` (e.g. from
            `kcnn.transfer.discriminative_optimizer`), or any Keras optimizer
            (then wrapped as one, every stage at the same rate, so that its
            state carries over too).
        loss, metrics: as for `model.compile` (prefer metric names or new
            metric objects: they are compiled once per phase).
        validation_data, callbacks, verbose, **fit_kwargs: passed to every
            `model.fit`. Callbacks see one `fit` per phase.
        freeze_batch_norm: keep batch norm frozen in the training stages too.

    Returns:
        A `keras.callbacks.History` over all epochs; `history.model` is `model`.
    """
    all_stages = stages(model)
    checks.positive_int("epochs", epochs)
    if not isinstance(schedule, dict):
        raise ValueError(f"schedule must be a dict of stage name -> first epoch; "
                         f"received schedule={schedule!r}.")
    for stage, epoch in schedule.items():
        if stage not in all_stages:
            raise ValueError(f"schedule names stage {stage!r}, which {model.name} does "
                             f"not have; its stages are {', '.join(all_stages)}.")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"schedule[{stage!r}] must be an epoch >= 0; received "
                             f"{epoch!r}.")
    if not isinstance(optimizer, DiscriminativeOptimizer):
        optimizer = discriminative_optimizer(model, optimizer, backbone=1.0)

    starts = sorted({0} | {e for e in schedule.values() if e < epochs})
    history = keras.callbacks.History()
    history.set_model(model)
    history.epoch = []
    for start, end in zip(starts, starts[1:] + [epochs]):
        training = [stage for stage, epoch in schedule.items() if epoch <= start]
        set_trainable(model, training, freeze_batch_norm=freeze_batch_norm)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        optimizer.build(model.trainable_variables)
        phase = model.fit(x, validation_data=validation_data, initial_epoch=start,
                          epochs=end, callbacks=list(callbacks), verbose=verbose,
                          **fit_kwargs)
        history.epoch += phase.epoch
        history.params = phase.params
        for key, values in phase.history.items():
            history.history.setdefault(key, []).extend(values)
    return history


def fine_tune(model, data, *, epochs=6, batch_size=32, learning_rate=1e-3, backbone=0.1,
              decay=1.0, unfreeze="gradual", every=1, optimizer="adamw", dropout=0.0,
              hidden=None, features=None, freeze_batch_norm=False, augment=None,
              validation_split=0.1, validation_data=None, callbacks=(), seed=0,
              verbose="auto"):
    """Fine-tune a trained model on new data: new head, then the backbone.

    The classifier is replaced for the data's classes when they differ from
    the model's (`replace_classifier`), the images are prepared as the model
    was trained (its metadata's preprocessing), and training runs with
    discriminative rates and, by default, gradual unfreezing (`fit_gradually`).
    A model given as an object is trained in place (the returned model shares
    its backbone layers); a path is loaded first.

    Args:
        model: a trained Keras model or the path of a `.keras` file.
        data: anything `kcnn.data.load` takes (an image folder with one
            sub-folder per class, a tensorflow-datasets name, `(x, y)`) or a
            `kcnn.data.Source`.
        epochs, batch_size: training length and batch (at most the number of
            training images).
        learning_rate: the head's rate, decayed to 0 by a cosine schedule over
            all epochs.
        backbone, decay: the last stage trains at `backbone` times the head's
            rate, each earlier stage at `decay` times the next one's.
        unfreeze: "gradual" (the head alone first, then one more stage from
            the top every `every` epochs), "all" (everything from the start),
            "none" (the head only) or N (the head and the last N stages).
        optimizer: the optimizer class and settings (name or instance);
            "adamw" by default. Its learning rate is replaced as above.
        dropout, hidden, features: for the new head (see
            `replace_classifier`); `features` cuts the backbone at that layer.
        freeze_batch_norm: keep batch norm frozen everywhere.
        augment: a `kcnn.data.Augment`; default: small shifts for small
            grayscale images, random crops and flips otherwise.
        validation_data, validation_split: the validation data, chosen as
            `kcnn.train` chooses it (`kcnn.data.load_with_validation`):
            `validation_data` when given (like `data`), else `data`'s own
            validation split, else `validation_split` of it held out (None or
            0: no validation).
        callbacks, seed, verbose: as for `kcnn.train`.

    Returns:
        The `keras.callbacks.History`; `history.model` is the fine-tuned model
        (a new model when the head was replaced), its metadata holding the
        new class names.
    """
    model = as_model(model)
    checks.positive_int("epochs", epochs)
    checks.positive_int("batch_size", batch_size)
    checks.positive_number("learning_rate", learning_rate)
    schedule_of = _schedule_maker(unfreeze, every)
    if augment is not None and not isinstance(augment, Augment):
        raise ValueError(f"augment must be None or a kcnn.data.Augment; received "
                         f"augment={augment!r}.")
    keras.utils.set_random_seed(seed)

    train_source, val_source = load_with_validation(
        data, validation_data=validation_data, validation_split=validation_split, seed=seed)
    names = list(train_source.class_names)
    metadata = getattr(model, "metadata", None) or {}
    if metadata.get("class_names") != names or features is not None:
        model = replace_classifier(model, names, dropout=dropout, hidden=hidden,
                                   features=features)
    preprocessing = _preprocessing(model)
    channels = model.metadata.get("channels")
    size = model_size(model)
    if augment is None:
        augment = (Augment(crop=False, flip=False, shift=2)
                   if channels == 1 and size <= SMALL else Augment())
    batch_size = batch_that_fits(batch_size, train_source.num_examples,
                                 data="the training data")
    train_ds = train_pipeline(train_source, preprocessing, batch_size=batch_size,
                              augment=augment, seed=seed, channels=channels,
                              cache=size <= SMALL)
    val_ds = None if val_source is None else eval_pipeline(
        val_source, preprocessing, batch_size=batch_size, channels=channels,
        cache=size <= SMALL)

    steps = max((train_source.num_examples or batch_size) // batch_size, 1)
    rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps)
    opt = discriminative_optimizer(model, optimizer, backbone=backbone, decay=decay,
                                   learning_rate=rate)
    history = fit_gradually(
        model, train_ds, epochs=epochs, schedule=schedule_of(model, epochs),
        optimizer=opt,
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=not outputs_probabilities(model)),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")],
        validation_data=val_ds, callbacks=callbacks,
        freeze_batch_norm=freeze_batch_norm, verbose=verbose, shuffle=False)
    model.metadata = {**model.metadata, "preprocessing": preprocessing}
    return history


# ----------------------------------------------------------------------------


def _schedule_maker(unfreeze, every):
    """A function (model, epochs) -> schedule for the `unfreeze` setting."""
    if unfreeze == "gradual":
        checks.positive_int("every", every)
        return lambda model, epochs: gradual_schedule(model, epochs, every)
    if unfreeze == "all":
        return lambda model, epochs: {s: 0 for s in stages(model)}
    if unfreeze == "none":
        return lambda model, epochs: {}
    if isinstance(unfreeze, int) and not isinstance(unfreeze, bool) and unfreeze >= 0:
        return lambda model, epochs: {
            s: 0 for s in list(stages(model))[::-1][:unfreeze]}
    raise ValueError(f"unfreeze must be one of {', '.join(map(repr, UNFREEZE))} or a "
                     f"number of stages >= 0; received unfreeze={unfreeze!r}.")


def _preprocessing(model):
    record = model.metadata.get("preprocessing")
    if record:
        return record
    h, w, c = _common.spatial_and_channels(tuple(model.inputs[0].shape[1:]))
    return _common.preprocessing(size=h if h == w else [h, w], channels=c)
