"""kcnn.schedules against torch.optim.lr_scheduler over drawn arguments, and the
`kcnn train --schedule` option strings: what is written parses back, garbage is refused.

The fixed cases of test_schedules.py check one setting each; here hypothesis
draws the settings (short and long phases, gammas above and below 1, one-cycle
phases a step or two long, warm-ups and plateaus with cooldowns), where an
off-by-one at an epoch boundary or a phase edge would show.
"""

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcnn import schedules
from kcnn.cli import build_parser
from kcnn.cli.train import menu
from tests.menu.test_schedules import FakeModel, torch_rates
from tests.options import negative, non_finite, option, words

torch = pytest.importorskip("torch")
lr_scheduler = torch.optim.lr_scheduler

backend_independent = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="backend-independent: option strings and argument checks are Python; runs "
           "once, on torch")

rates_ = st.sampled_from([0.1, 0.01, 1.0, 0.37])
gammas = st.floats(0.05, 1.5)
steps_per_epoch = st.integers(1, 4)


def assert_per_epoch_rates(name, kwargs, make, epochs, lr, per_epoch):
    schedule = schedules.create(name, learning_rate=lr, steps_per_epoch=per_epoch, **kwargs)
    got = schedules.rates(schedule, np.arange(epochs * per_epoch))
    expected = np.repeat(torch_rates(make, epochs, lr), per_epoch)
    # float32 rates: relative error ~1e-7, absolute near a rate of 0
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7 * lr)
    return schedule


@given(step_size=st.integers(1, 6), gamma=gammas, lr=rates_, per_epoch=steps_per_epoch,
       epochs=st.integers(1, 15))
def test_step_gives_steplr_rates(step_size, gamma, lr, per_epoch, epochs):
    assert_per_epoch_rates("step", {"step_size": step_size, "gamma": gamma},
                           lambda o: lr_scheduler.StepLR(o, step_size, gamma), epochs, lr,
                           per_epoch)


@given(milestones=st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True)
       .map(sorted), gamma=gammas, lr=rates_, per_epoch=steps_per_epoch,
       epochs=st.integers(1, 15))
def test_multistep_gives_multisteplr_rates(milestones, gamma, lr, per_epoch, epochs):
    assert_per_epoch_rates("multistep", {"milestones": milestones, "gamma": gamma},
                           lambda o: lr_scheduler.MultiStepLR(o, milestones, gamma), epochs,
                           lr, per_epoch)


@given(gamma=gammas, lr=rates_, per_epoch=steps_per_epoch, epochs=st.integers(1, 15))
def test_exponential_gives_exponentiallr_rates(gamma, lr, per_epoch, epochs):
    assert_per_epoch_rates("exponential", {"gamma": gamma},
                           lambda o: lr_scheduler.ExponentialLR(o, gamma), epochs, lr,
                           per_epoch)


@given(t_max=st.integers(1, 12), eta_fraction=st.sampled_from([0.0, 0.01, 0.5, 1.0]),
       warmup=st.integers(0, 4), start_factor=st.floats(0.01, 1.0), lr=rates_,
       per_epoch=steps_per_epoch)
def test_cosine_with_warmup_gives_linearlr_then_cosineannealinglr_rates(
        t_max, eta_fraction, warmup, start_factor, lr, per_epoch):
    eta_min = eta_fraction * lr

    def make(optimizer):
        if not warmup:
            return lr_scheduler.CosineAnnealingLR(optimizer, t_max, eta_min)
        linear = lr_scheduler.LinearLR(optimizer, start_factor, total_iters=warmup)
        cosine = lr_scheduler.CosineAnnealingLR(optimizer, t_max, eta_min)
        return lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])

    kwargs = {"t_max": t_max, "eta_min": eta_min, "warmup_epochs": warmup,
              "warmup_start_factor": start_factor}
    # over the schedule's own range: the warm-up, then t_max epochs down to eta_min
    epochs = warmup + t_max + 1
    schedule = assert_per_epoch_rates("cosine", kwargs, make, epochs, lr, per_epoch)
    # past it the last rate holds (torch's cosine climbs back up)
    past = schedules.rates(schedule, [(epochs + 3) * per_epoch])[0]
    assert past == pytest.approx(eta_min, rel=2e-6, abs=1e-7 * lr)


@settings(max_examples=40)
@given(total_steps=st.integers(2, 80), pct_start=st.floats(0.02, 0.98),
       anneal_strategy=st.sampled_from(["cos", "linear"]),
       div_factor=st.sampled_from([25.0, 1.0, 3.5, 1e3]),
       final_div_factor=st.sampled_from([1e4, 1.0, 0.5, 40.0]), three_phase=st.booleans(),
       max_lr=rates_)
def test_onecycle_gives_onecyclelr_rates_or_refuses_a_phase_without_steps(
        total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, three_phase,
        max_lr):
    kwargs = {"max_lr": max_lr, "total_steps": total_steps, "pct_start": pct_start,
              "anneal_strategy": anneal_strategy, "div_factor": div_factor,
              "final_div_factor": final_div_factor, "three_phase": three_phase}
    ends = [pct_start * total_steps - 1, total_steps - 1]
    if three_phase:
        ends.insert(1, 2 * pct_start * total_steps - 2)
    if min(b - a for a, b in zip([0] + ends, ends)) <= 0:
        # torch divides by zero, or anneals backwards, on a phase with no steps
        with pytest.raises(ValueError, match=r"total_steps=\d+ is too short for pct_start"):
            schedules.create("onecycle", **kwargs)
        return
    schedule = schedules.create("onecycle", **kwargs)
    got = schedules.rates(schedule, np.arange(total_steps + 2))
    expected = torch_rates(lambda o: lr_scheduler.OneCycleLR(o, cycle_momentum=False,
                                                             **kwargs), total_steps, max_lr)
    np.testing.assert_allclose(got[:total_steps], expected, rtol=2e-5, atol=1e-6 * max_lr)
    # past the cycle the last rate holds (torch raises)
    np.testing.assert_allclose(got[total_steps:], expected[-1], rtol=2e-5,
                               atol=1e-6 * max_lr)


@settings(max_examples=40)
@given(metric=st.lists(st.sampled_from([3.0, 2.0, 1.0, 0.999, 0.5, 0.0, -0.5, -1.0]),
                       min_size=1, max_size=25),
       mode=st.sampled_from(["min", "max"]), factor=st.sampled_from([0.1, 0.5, 0.9]),
       patience=st.integers(0, 3), threshold=st.sampled_from([0.0, 1e-4, 0.01, 0.6]),
       threshold_mode=st.sampled_from(["rel", "abs"]), cooldown=st.integers(0, 3),
       min_lr=st.sampled_from([0.0, 0.004, 0.05]))
def test_plateau_divides_the_rate_at_the_epochs_torch_does(
        metric, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr):
    kwargs = {"mode": mode, "factor": factor, "patience": patience, "threshold": threshold,
              "threshold_mode": threshold_mode, "cooldown": cooldown, "min_lr": min_lr}
    callback = schedules.create("plateau", learning_rate=0.1, monitor="val_loss", **kwargs)
    callback.set_model(FakeModel(callback.learning_rate))
    callback.on_train_begin()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    reference = lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)

    def after_epoch(epoch, value):
        """(kcnn's rate, torch's rate) once `value` ends epoch `epoch`."""
        callback.on_epoch_end(epoch, {"val_loss": value})
        optimizer.step()
        reference.step(value)
        return (float(keras.ops.convert_to_numpy(callback.model.optimizer.learning_rate)),
                optimizer.param_groups[0]["lr"])

    got, expected = zip(*(after_epoch(*e) for e in enumerate(metric)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# ----------------------------------------------------------------------------
# `kcnn train --schedule NAME key=value ...`


def schedule_spec(tokens):
    """What `kcnn train ... --schedule TOKENS` hands `kcnn.train` as `schedule=`."""
    args = build_parser().parse_args(["train", "lenet5", "--schedule", *tokens])
    return menu(args)["schedule"]


def create_as_train_does(spec):
    """`kcnn.train`'s call: the run's rate, steps and epochs, overridden by the options."""
    options = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = options.pop("name")
    defaults = {"learning_rate": 0.1, "steps_per_epoch": 10, "epochs": 20}
    return schedules.create(name, **{**defaults, **options})


positive = st.floats(1e-4, 10)
COMMON = {"learning_rate": st.floats(0.1, 1.0), "steps_per_epoch": st.integers(10, 100),
          "epochs": st.integers(10, 100)}
VALID = {
    "step": ({"step_size": st.integers(1, 50)}, {"gamma": positive}),
    "multistep": ({"milestones": st.lists(st.integers(1, 100), min_size=1, max_size=4,
                                          unique=True).map(lambda m: tuple(sorted(m)))},
                  {"gamma": positive}),
    "exponential": ({"gamma": positive}, {}),
    "cosine": ({}, {"t_max": st.integers(1, 100), "eta_min": st.floats(0, 0.1),
                    "warmup_epochs": st.integers(0, 5),
                    "warmup_start_factor": st.floats(0, 1)}),
    "onecycle": ({}, {"max_lr": positive, "total_steps": st.integers(100, 1000),
                      "pct_start": st.floats(0.05, 0.45),
                      "anneal_strategy": st.sampled_from(["cos", "linear"]),
                      "div_factor": positive, "final_div_factor": positive,
                      "three_phase": st.booleans()}),
    "plateau": ({}, {"monitor": st.sampled_from(["loss", "val_loss", "val_top1"]),
                     "mode": st.sampled_from(["min", "max"]),
                     "factor": st.floats(0.01, 0.99), "patience": st.integers(0, 20),
                     "threshold": st.floats(0, 1),
                     "threshold_mode": st.sampled_from(["rel", "abs"]),
                     "cooldown": st.integers(0, 5), "min_lr": st.floats(0, 0.01),
                     "eps": st.floats(0, 1e-3), "verbose": st.integers(0, 1)}),
}


@backend_independent
def test_every_schedule_has_valid_options():
    assert sorted(VALID) == sorted(schedules.NAMES)


@backend_independent
@settings(max_examples=60)
@given(data=st.data(), name=st.sampled_from(sorted(VALID)))
def test_written_schedule_options_parse_back_and_make_the_schedule(data, name):
    required, optional = VALID[name]
    options = data.draw(st.fixed_dictionaries(required, optional={**optional, **COMMON}),
                        label="options")
    spec = schedule_spec([name] + [option(k, v) for k, v in options.items()])
    assert spec == ({"name": name, **options} if options else name)
    made = create_as_train_does(spec)
    kind = keras.callbacks.Callback if name == "plateau" \
        else keras.optimizers.schedules.LearningRateSchedule
    assert isinstance(made, kind)


# Beside words and non-finite numbers, which no option takes.
integers_at_least_1 = st.one_of(st.integers(max_value=0), st.floats(allow_nan=False))
integers_at_least_0 = st.one_of(st.integers(max_value=-1), st.floats(allow_nan=False))
positive_numbers = st.one_of(negative, st.just(0), st.just(0.0))
INVALID = {
    "step_size": integers_at_least_1, "t_max": integers_at_least_1,
    "total_steps": integers_at_least_1, "steps_per_epoch": integers_at_least_1,
    "epochs": integers_at_least_1,
    "warmup_epochs": integers_at_least_0, "patience": integers_at_least_0,
    "cooldown": integers_at_least_0,
    "gamma": positive_numbers, "max_lr": positive_numbers, "div_factor": positive_numbers,
    "final_div_factor": positive_numbers, "learning_rate": positive_numbers,
    "milestones": st.one_of(
        st.just(()),
        st.lists(st.integers(1, 9), min_size=2, max_size=4).filter(
            lambda m: m != sorted(set(m))).map(tuple),
        st.lists(st.integers(-5, 0), min_size=1, max_size=3, unique=True).map(
            lambda m: tuple(sorted(m))),
        st.tuples(st.floats(1, 9))),
    "eta_min": st.one_of(negative, st.floats(0.1001, 10)),
    "warmup_start_factor": st.one_of(negative, st.floats(1.0001, 10)),
    "pct_start": st.one_of(negative, st.just(0), st.floats(1, 10)),
    "anneal_strategy": st.one_of(st.integers(), st.floats(allow_nan=False)),
    "three_phase": st.one_of(st.integers(), st.floats(allow_nan=False)),
    "mode": st.one_of(st.integers(), st.floats(allow_nan=False)),
    "threshold_mode": st.one_of(st.integers(), st.floats(allow_nan=False)),
    "factor": st.one_of(negative, st.just(0), st.floats(1, 10)),
    "threshold": negative, "min_lr": negative, "eps": negative,
}
# One valid setting per schedule, into which one bad option goes.
BASE = {"step": {"step_size": 3}, "multistep": {"milestones": (2, 5)},
        "exponential": {"gamma": 0.5}, "cosine": {"t_max": 5},
        "onecycle": {"total_steps": 100}, "plateau": {}}
# Options that are taken as they come: any name may be monitored (the run
# checks it is logged), and verbose is Keras's.
UNCHECKED = {"monitor", "verbose"}
BAD_OPTIONS = sorted(
    (name, key) for name in schedules.NAMES
    for key in set(schedules._FACTORIES[name][1]) - UNCHECKED | set(COMMON))


@backend_independent
def test_every_checked_schedule_option_has_garbage():
    assert sorted({key for _, key in BAD_OPTIONS}) == sorted(INVALID)


@backend_independent
@settings(max_examples=100)
@given(data=st.data(), case=st.sampled_from(BAD_OPTIONS))
def test_garbage_schedule_options_are_refused_naming_the_option(data, case):
    name, key = case
    value = data.draw(st.one_of(words, non_finite, INVALID[key]), label=key)
    tokens = [name] + [option(k, v) for k, v in BASE[name].items()] + [option(key, value)]
    spec = schedule_spec(tokens)
    with pytest.raises(ValueError, match=rf"\b{key}="):
        create_as_train_does(spec)


@backend_independent
@settings(max_examples=30)
@given(name=st.sampled_from(sorted(BASE)),
       key=words.filter(lambda w: w not in set(COMMON).union(
           *(allowed for _, allowed in schedules._FACTORIES.values()))),
       value=st.integers(0, 3))
def test_unknown_schedule_options_are_refused_by_name(name, key, value):
    tokens = [name] + [option(k, v) for k, v in BASE[name].items()] + [f"{key}={value}"]
    with pytest.raises(ValueError, match=rf"Schedule '{name}' takes no argument {key}="):
        create_as_train_does(schedule_spec(tokens))
