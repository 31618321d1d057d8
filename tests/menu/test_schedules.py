"""kcnn.schedules: the same rates as torch.optim.lr_scheduler, step by step, on every backend."""

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import keras
import numpy as np
import pytest

from kcnn import schedules
from kcnn.data import load_digits

torch = pytest.importorskip("torch")
lr_scheduler = torch.optim.lr_scheduler

STEPS_PER_EPOCH = 3


def torch_rates(make, steps, lr=0.1):
    """The rate torch uses at each of `steps` scheduler steps."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


EPOCH_BASED = {
    "step": ({"step_size": 3, "gamma": 0.5}, lambda o: lr_scheduler.StepLR(o, 3, 0.5), 10),
    "multistep": ({"milestones": [2, 5, 7]},
                  lambda o: lr_scheduler.MultiStepLR(o, [2, 5, 7]), 10),
    "exponential": ({"gamma": 0.8}, lambda o: lr_scheduler.ExponentialLR(o, 0.8), 10),
    "cosine": ({"t_max": 8, "eta_min": 0.01},
               lambda o: lr_scheduler.CosineAnnealingLR(o, 8, 0.01), 9),
    "cosine_warmup": ({"t_max": 8, "warmup_epochs": 3}, lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, 1 / 3, total_iters=3),
            lr_scheduler.CosineAnnealingLR(o, 8)], milestones=[3]), 12),
}


@pytest.mark.parametrize("case", sorted(EPOCH_BASED))
def test_epoch_based_schedules_give_torchs_rates_changing_at_epoch_boundaries(case):
    kwargs, make, epochs = EPOCH_BASED[case]
    schedule = schedules.create(case.split("_")[0], learning_rate=0.1,
                                steps_per_epoch=STEPS_PER_EPOCH, **kwargs)
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    got = schedules.rates(schedule, np.arange(epochs * STEPS_PER_EPOCH))
    expected = np.repeat(torch_rates(make, epochs), STEPS_PER_EPOCH)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kwargs", [{}, {"three_phase": True},
                                    {"anneal_strategy": "linear", "pct_start": 0.25,
                                     "div_factor": 10.0, "final_div_factor": 100.0}])
def test_onecycle_gives_torchs_rates_every_batch(kwargs):
    schedule = schedules.create("onecycle", max_lr=0.1, total_steps=50, **kwargs)
    got = schedules.rates(schedule, np.arange(50))
    expected = torch_rates(lambda o: lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=50, cycle_momentum=False, **kwargs), 50)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
    # past the cycle the last rate holds (torch raises)
    assert schedules.rates(schedule, [60])[0] == pytest.approx(got[-1], rel=1e-6)


def test_onecycle_counts_its_steps_from_epochs_and_steps_per_epoch():
    schedule = schedules.create("onecycle", learning_rate=0.2, epochs=4, steps_per_epoch=5)
    assert schedule.total_steps == 20 and schedule.max_lr == 0.2
    assert keras.ops.convert_to_numpy(schedule(5)) == pytest.approx(0.2, rel=1e-6)


class FakeModel:
    def __init__(self, lr):
        self.optimizer = keras.optimizers.SGD(learning_rate=lr)


@pytest.mark.parametrize("kwargs", [
    {"patience": 2, "cooldown": 1, "threshold": 1e-3, "factor": 0.5, "min_lr": 0.004},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.05, "patience": 0},
])
def test_plateau_divides_the_rate_after_the_epochs_torch_does(kwargs):
    rng = np.random.default_rng(0)
    metric = np.concatenate([[1.0, 0.9999, 0.9, 0.9, 0.9, 0.9, 0.85], 0.85 + 0.01 *
                             rng.standard_normal(14), [0.5, 0.5, 0.5, 0.5]])
    if kwargs.get("mode") == "max":
        metric = -metric
    callback = schedules.create("plateau", learning_rate=0.1, monitor="val_loss", **kwargs)
    callback.set_model(FakeModel(callback.learning_rate))
    callback.on_train_begin()
    got = []
    for epoch, value in enumerate(metric):
        logs = {"val_loss": float(value)}
        callback.on_epoch_end(epoch, logs)
        assert logs["learning_rate"] == pytest.approx(got[-1] if got else 0.1, rel=1e-6)
        got.append(float(keras.ops.convert_to_numpy(callback.model.optimizer.learning_rate)))

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    reference = lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
    expected = []
    for value in metric:
        optimizer.step()
        reference.step(float(value))
        expected.append(optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert len(set(expected)) >= 3  # the sequence made torch divide at least twice


def test_schedules_survive_a_keras_save_and_load(tmp_path):
    made = [schedules.create("onecycle", max_lr=0.05, total_steps=40),
            schedules.create("cosine", t_max=5, warmup_epochs=1, steps_per_epoch=4),
            schedules.create("multistep", milestones=[1, 3], steps_per_epoch=4)]
    steps = np.arange(40)
    for schedule in made:
        again = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(schedule))
        assert type(again) is type(schedule)
        np.testing.assert_allclose(schedules.rates(again, steps),
                                   schedules.rates(schedule, steps), rtol=1e-7)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(made[0]), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, schedules.OneCycle)
    assert schedule.get_config() == made[0].get_config()


@pytest.mark.parametrize("name, kwargs, message", [
    ("cosin", {}, r"Unknown schedule name='cosin'. Did you mean 'cosine'"),
    ("step", {"step_size": 2, "T_max": 3}, r"takes no argument T_max=3"),
    ("step", {"step_size": 0}, r"step_size must be a positive integer; received step_size=0"),
    ("step", {"step_size": 2, "gamma": -0.5}, r"gamma must be a positive number"),
    ("multistep", {"milestones": [5, 3]}, r"milestones must be .* increasing"),
    ("exponential", {}, r"gamma must be a positive number; received gamma=None"),
    ("cosine", {}, r"t_max must be a positive integer; received t_max=None"),
    ("cosine", {"t_max": 5, "eta_min": 1.0}, r"eta_min must be a rate in \[0"),
    ("onecycle", {"total_steps": 10, "pct_start": 1.5}, r"pct_start must be a fraction"),
    ("onecycle", {"total_steps": 2}, r"total_steps=2 is too short"),
    ("onecycle", {}, r"onecycle needs total_steps"),
    ("plateau", {"factor": 1.0}, r"factor must be in \(0, 1\)"),
    ("plateau", {"mode": "auto"}, r"mode must be 'min' or 'max'"),
    ("step", {"step_size": 1, "steps_per_epoch": 0}, r"steps_per_epoch must be a positive"),
    ("step", {"step_size": 1, "learning_rate": -1}, r"learning_rate must be a positive"),
])
def test_bad_schedule_arguments_are_named(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        schedules.create(name, **kwargs)


def test_train_takes_the_whole_menu_and_plots_the_rate(tmp_path):
    from PIL import Image

    (x, y), _ = load_digits()
    out = tmp_path / "run"
    history = kcnn.train(
        "lenet5", (x[:128], y[:128]), epochs=3, batch_size=32, learning_rate=0.01,
        schedule={"name": "onecycle", "pct_start": 0.25}, loss="focal", label_smoothing=0.1,
        class_weight="balanced", augment="rotation=10 erasing=0.5 mixup=0.2",
        validation_split=0.0, out_dir=str(out), verbose=0)
    model = history.model
    assert np.isfinite(history.history["loss"]).all()
    assert isinstance(model.loss, keras.losses.CategoricalFocalCrossentropy)
    assert model.loss.get_config()["label_smoothing"] == 0.1
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, schedules.OneCycle)
    assert schedule.total_steps == 12 and schedule.max_lr == 0.01
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 12
    with Image.open(out / "learning_rate.png") as image:
        assert image.format == "PNG" and image.size == (700, 350)


def test_train_divides_the_rate_on_a_plateau_of_the_training_loss():
    (x, y), _ = load_digits()
    # an improvement must beat the best loss by 100: none does, so every epoch
    # after the first divides the rate by 10
    history = kcnn.train("lenet5", (x[:64], y[:64]), epochs=3, batch_size=32,
                         learning_rate=0.01, validation_split=0.0, verbose=0,
                         schedule={"name": "plateau", "patience": 0, "threshold": 100.0,
                                   "threshold_mode": "abs"})
    np.testing.assert_allclose(history.history["learning_rate"], [0.01, 0.01, 0.001],
                               rtol=1e-6)
    assert float(keras.ops.convert_to_numpy(history.model.optimizer.learning_rate)) == \
        pytest.approx(1e-4)
