"""recipe="torchvision": the recipe of torchvision's ResNet-50 IMAGENET1K_V2 weights,
checked against torch's own optimizer and schedulers, and run end to end.

The reference is the command of pytorch/vision#3995 for
references/classification/train.py (quoted in kcnn/training/recipes.py); each
value below is that command's, or train.py's default where the command is silent.
"""

import dataclasses
import importlib

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import keras
import numpy as np
import pytest

from kcnn.data import Augment
from kcnn.optimizers import SGD
from kcnn.training import get_recipe, train
from kcnn.training.recipes import normalization_variables

torch = pytest.importorskip("torch")
lr_scheduler = torch.optim.lr_scheduler

RECIPE = get_recipe("torchvision")


def test_the_recipe_holds_the_reference_commands_values():
    assert (RECIPE.optimizer, RECIPE.momentum, RECIPE.weight_decay) == ("sgd", 0.9, 2e-5)
    assert not RECIPE.decay_norm  # --norm-weight-decay 0.0
    assert (RECIPE.learning_rate, RECIPE.reference_batch) == (0.5, 1024)  # 8 GPUs x 128
    assert RECIPE.rate_for_batch(128) == pytest.approx(0.0625)  # scaled linearly
    assert (RECIPE.epochs, RECIPE.warmup_epochs, RECIPE.warmup_start_factor) == (600, 5, 0.01)
    assert RECIPE.schedule == "cosine" and RECIPE.schedule_per_epoch
    assert RECIPE.label_smoothing == 0.1 and RECIPE.early_stopping_patience is None
    # train.py's --interpolation (bilinear) goes to TrivialAugmentWide too.
    assert RECIPE.augment == Augment(resized_crop=True, flip=True, trivialaugment=True,
                                     erasing=0.1, mixup=0.2, cutmix=1.0,
                                     interpolation="bilinear")
    assert RECIPE.augment.resized_crop == (0.08, 1.0)  # RandomResizedCrop's default scale
    assert (RECIPE.train_crop, RECIPE.eval_resize) == (176, 232)
    assert (RECIPE.ema_decay, RECIPE.ema_steps) == (0.99998, 32)


def test_the_rate_is_torchs_warmup_then_cosine_stepped_per_epoch():
    """train.py: SequentialLR(LinearLR(start_factor=0.01, total_iters=5),
    CosineAnnealingLR(T_max=epochs - 5)), stepped once per epoch."""
    epochs, steps_per_epoch, batch = 12, 3, 256
    rate = RECIPE.rate_for_batch(batch)
    schedule = RECIPE.make_schedule(steps_per_epoch=steps_per_epoch, epochs=epochs,
                                    learning_rate=rate)
    got = kcnn.schedules.rates(schedule, np.arange(epochs * steps_per_epoch))

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=rate)
    scheduler = lr_scheduler.SequentialLR(optimizer, [
        lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=5),
        lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs - 5)], milestones=[5])
    expected = []
    for _ in range(epochs):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(got, np.repeat(expected, steps_per_epoch), rtol=1e-6,
                               atol=1e-12)


def tiny_model():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.LayerNormalization(name="ln")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(x))


def test_sgd_decays_kernels_and_biases_but_no_normalisation_parameter_as_torch():
    """torchvision's set_weight_decay(norm_weight_decay=0.0): its parameter groups
    in torch.optim.SGD, against the recipe's optimizer, three steps on the same
    gradients."""
    model = tiny_model()
    rng = np.random.default_rng(0)
    variables = model.trainable_variables
    for v in variables:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    norm = {id(v) for v in normalization_variables(model)}
    assert len(norm) == 4  # BN and LN gamma and beta; the conv and dense biases decay
    grads = [rng.normal(size=v.shape).astype("float32") for v in variables]
    weights = [torch.nn.Parameter(torch.tensor(np.array(v.numpy()))) for v in variables]
    reference = torch.optim.SGD(
        [{"params": [w for w, v in zip(weights, variables) if id(v) not in norm],
          "weight_decay": RECIPE.weight_decay},
         {"params": [w for w, v in zip(weights, variables) if id(v) in norm],
          "weight_decay": 0.0}], lr=0.1, momentum=RECIPE.momentum)
    optimizer = RECIPE.make_optimizer(learning_rate=0.1, model=model)
    assert isinstance(optimizer, SGD)
    for _ in range(3):
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        for w, g in zip(weights, grads):
            w.grad = torch.tensor(g)
        reference.step()
    for v, w in zip(variables, weights):
        np.testing.assert_allclose(v.numpy(), w.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=v.path)
    # Without the model the optimizer cannot know what to leave out: an error, not
    # a silent decay of every variable.
    with pytest.raises(ValueError, match="model="):
        RECIPE.make_optimizer(learning_rate=0.1)


def any_size_model(crop=40):
    """A tiny classifier for any input size, with the preprocessing a kcnn model
    has; the same weights at each call."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(x))
    model.metadata = {"preprocessing": {
        "scale": 1 / 255, "mean": [0.5] * 3, "std": [0.25] * 3, "resize": crop + 8,
        "crop": crop, "interpolation": "bilinear"}}
    return model


def photos(n=24, size=96):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, size=(n, size, size + 16, 3), dtype=np.uint8),
            rng.integers(0, 3, size=n))


def test_train_with_the_recipe_trains_at_the_training_crop_and_evaluates_at_the_models(
        monkeypatch):
    """The batches' size is read from the pipeline `kcnn.train` makes."""
    seen = []
    module = importlib.import_module("kcnn.training.train")  # the package's `train` is the function
    made = module.train_pipeline

    def spy(*args, **kwargs):
        ds = made(*args, **kwargs)
        seen.append(tuple(ds.element_spec[0].shape))
        return ds

    monkeypatch.setattr(module, "train_pipeline", spy)
    recipe = dataclasses.replace(RECIPE, train_crop=32, eval_resize=44, batch_size=8,
                                 ema_decay=None)
    model = any_size_model(crop=40)
    history = train(model, photos(), recipe=recipe, epochs=1, validation_split=0.25,
                    verbose=0)
    assert seen == [(8, 32, 32, 3)]
    assert model.metadata["preprocessing"]["resize"] == 44  # evaluation: 44, crop 40
    assert model.metadata["preprocessing"]["crop"] == 40
    assert np.isfinite(history.history["val_loss"]).all()
    assert isinstance(model.optimizer, SGD) and model.optimizer.l2 == RECIPE.weight_decay
    # After one epoch: the warm-up's second rate, from 0.01 of the peak, the
    # peak scaled linearly from 0.5 at 1024 to the batch of 8.
    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert rate == pytest.approx(0.5 * 8 / 1024 * (0.01 + 0.99 * 1 / 5), rel=1e-5)


def test_a_model_of_one_input_size_is_refused_with_the_way_out():
    model = keras.Sequential([keras.Input((96, 96, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.metadata = any_size_model().metadata
    with pytest.raises(ValueError, match=r"any input size.*input_shape=\(None, None, 3\)"):
        train(model, photos(), recipe="torchvision", epochs=1, verbose=0)


def test_a_builder_with_a_flattening_head_says_why_it_cannot():
    with pytest.raises(ValueError, match=r"vgg11 built for any input size.*train_crop"):
        train("vgg11", photos(), recipe="torchvision", epochs=1, verbose=0)


class StopAt(keras.callbacks.Callback):
    """Interrupts a run at the first batch of `epoch`, as a crash would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch:
            raise KeyboardInterrupt

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch


def test_the_average_is_what_is_saved_and_a_resumed_run_keeps_it(tmp_path):
    """Two epochs straight, and two epochs with a crash after the first and a
    restart: the same averaged model in `model.keras` (a restart that lost the
    average would start it again from the weights of the restart)."""
    recipe = dataclasses.replace(RECIPE, train_crop=32, eval_resize=44, batch_size=4,
                                 ema_steps=2, warmup_epochs=0, augment=Augment(
                                     resized_crop=True, flip=True))
    runs = {}
    for name, stops in (("straight", ()), ("restarted", (StopAt(1),))):
        out = tmp_path / name
        if stops:
            with pytest.raises(KeyboardInterrupt):
                train(any_size_model(), photos(), recipe=recipe, epochs=2, out_dir=out,
                      callbacks=list(stops), verbose=0)
            assert (out / "backup" / "ema.npz").exists()
        model = any_size_model()
        train(model, photos(), recipe=recipe, epochs=2, out_dir=out, verbose=0)
        assert not (out / "backup").exists()  # the backup and the average's go together
        saved = keras.saving.load_model(out / "model.keras")
        runs[name] = [np.asarray(w) for w in saved.get_weights()]
        live = [np.asarray(w) for w in model.get_weights()]
        for a, b in zip(live, runs[name]):
            np.testing.assert_array_equal(a, b)  # the model in memory is the average too
    for a, b in zip(runs["straight"], runs["restarted"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_average_with_early_stopping_is_refused():
    with pytest.raises(ValueError, match="early_stopping_patience=10.*None"):
        dataclasses.replace(get_recipe("default"), ema_decay=0.999)
