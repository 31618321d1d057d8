"""kcnn.tuning on every backend: a real random search on the digits, resumed,
refused, failing; the dtype policy (and on JAX the distribution) that every
build() sees; the plot; the search space and the `kcnn tune` command line."""

import argparse
import csv
import functools
import json
import os
import runpy
import shutil
import subprocess
import sys

import keras
import keras_tuner as kt
import matplotlib
from matplotlib import image as mpl_image
import numpy as np
import pytest

import kcnn
from kcnn import registry, tuning
from kcnn.cli import build_parser, main as kcnn_main, tune as tune_command
from kcnn.tuning import report
from kcnn.tuning.hypermodel import _with_dropout
from kcnn.tuning.search import _check_budget

BACKEND = keras.backend.backend()
POLICY = "mixed_bfloat16"
# Digits in batches of 142: 9 training steps a trial, and the 142 validation
# images in one batch (one evaluation shape: JAX compiles each shape).
SEARCH = dict(tuner="random", epochs=1, batch_size=142, seed=0, verbose=0)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A 2-trial search under a policy, and on JAX a distribution, set by the user.

    Records the policy and distribution in force each time the builder runs
    inside build(), after keras-tuner cleared the session.
    """
    directory = tmp_path_factory.mktemp("search") / "lenet5"
    seen = []
    real = registry.get_builder

    def get_builder(name):
        builder = real(name)

        @functools.wraps(builder)
        def recording(**kwargs):
            seen.append((keras.config.dtype_policy().name, keras.distribution.distribution()))
            return builder(**kwargs)

        return recording

    distribution = keras.distribution.DataParallel() if BACKEND == "jax" else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "get_builder", get_builder)
        keras.config.set_dtype_policy(POLICY)
        if distribution is not None:
            keras.distribution.set_distribution(distribution)
        try:
            result = tuning.tune("lenet5", "digits", directory=directory, max_trials=2,
                                 **SEARCH)
        finally:
            keras.config.set_dtype_policy("float32")
            keras.backend.clear_session()  # drops the distribution too
    return result, seen, distribution


def _rows(directory):
    with open(os.path.join(directory, "trials.csv")) as f:
        return list(csv.DictReader(f))


def _parser():
    parser = argparse.ArgumentParser(prog="kcnn")
    tune_command.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_a_random_search_writes_table_plot_and_best_values(search):
    result, _, _ = search
    directory = result.directory
    assert sorted(os.listdir(directory)) == [
        "best_hyperparameters.json", "best_model.keras", "keras_tuner", "search.json",
        "trials.csv", "tuning.png"]
    rows = _rows(directory)
    assert [r["trial_id"] for r in rows] == ["0", "1"]
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert rows[0]["learning_rate"] != rows[1]["learning_rate"]
    with open(os.path.join(directory, "best_hyperparameters.json")) as f:
        best = json.load(f)
    assert set(best["hyperparameters"]) == {"learning_rate", "dropout"}
    assert 1e-4 <= best["hyperparameters"]["learning_rate"] <= 1e-1
    assert 0 <= best["hyperparameters"]["dropout"] <= 0.6
    assert best["score"] == max(float(r["val_top1"]) for r in rows)
    assert best["hyperparameters"] == result.best_hyperparameters
    assert result.trials_run == 2
    image = mpl_image.imread(os.path.join(directory, "tuning.png"))
    assert image.shape[0] > 100 and image.shape[1] > 400  # two panels side by side


def test_the_retrained_best_model_repeats_the_best_trial_and_predicts(search):
    result, _, _ = search
    with open(os.path.join(result.directory, "best_hyperparameters.json")) as f:
        best = json.load(f)
    # Every trial starts from the same seeded weights: retraining the best values
    # repeats the best trial (within one validation image of 142).
    assert best["retrained"]["val_top1"] == pytest.approx(best["score"], abs=1 / 142 + 1e-6)
    model = keras.saving.load_model(result.model_path)
    assert model.get_layer("conv1").dtype_policy.name == POLICY
    assert model.get_layer("dropout").rate == pytest.approx(
        best["hyperparameters"]["dropout"])
    _, (x, _) = kcnn.data.load_digits()
    ranked = kcnn.predict(model, x[:3], top_k=2)
    assert len(ranked) == 3 and all(0 <= p <= 1 for _, p in ranked[0])


def test_every_build_sees_the_policy_and_distribution_the_user_set(search):
    _, seen, distribution = search
    # The data check, the space declaration, two trials and the retraining.
    assert len(seen) == 5
    assert all(policy == POLICY for policy, _ in seen)
    if BACKEND == "jax":
        assert all(d is distribution for _, d in seen)


def test_the_same_command_with_three_trials_runs_exactly_one_more(search, tmp_path, capsys):
    result, _, _ = search
    directory = tmp_path / "resumed"
    shutil.copytree(result.directory, directory)
    args = _parser().parse_args([
        "tune", "lenet5", "--data", "digits", "--tuner", "random",
        "--max-trials", "3", "--epochs", "1", "--batch-size", "142",
        "--mixed-precision", POLICY, "--no-retrain", "--out", str(directory)])
    assert args.run(args) == 0
    assert "best of 3 trials (1 run now)" in capsys.readouterr().out
    rows = _rows(directory)
    assert [r["trial_id"] for r in rows] == ["0", "1", "2"]
    assert rows[:2] == _rows(result.directory)  # the first two were not run again


def test_a_different_search_in_a_used_directory_is_refused(search):
    result, _, _ = search
    with pytest.raises(ValueError, match=r"different search \(epochs: 1 there, 2 now"):
        tuning.tune("lenet5", "digits", directory=result.directory, max_trials=2,
                    mixed_precision=POLICY, **{**SEARCH, "epochs": 2})


class Boom(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise RuntimeError("the disk is full")


def test_a_failing_trial_shows_its_own_error(tmp_path, capsys):
    with pytest.raises(tuning.TrialFailed) as error:
        tuning.tune("lenet5", "digits", directory=tmp_path / "failing", max_trials=2,
                    callbacks=[Boom()], **SEARCH)
    message = str(error.value)
    assert "2 of 2 trials failed and none completed" in message
    assert "Trial 1 failed with RuntimeError: the disk is full" in message
    assert "Traceback" in message and "on_train_begin" in message
    stderr = capsys.readouterr().err
    assert "trial 0 failed: RuntimeError: the disk is full" in stderr


def test_overwrite_replaces_a_used_directory(search, tmp_path):
    result, _, _ = search
    directory = tmp_path / "replaced"
    shutil.copytree(result.directory, directory)
    with pytest.raises(tuning.TrialFailed):  # fails at once: nothing is trained
        tuning.tune("lenet5", "digits", directory=directory, max_trials=1,
                    overwrite=True, callbacks=[Boom()], **{**SEARCH, "epochs": 2})
    with open(directory / "search.json") as f:
        assert json.load(f)["epochs"] == 2
    assert sorted(os.listdir(directory)) == ["keras_tuner", "search.json"]
    assert sorted(p for p in os.listdir(directory / "keras_tuner") if p.startswith("trial_")) \
        == ["trial_0"]


def test_builders_without_dropout_get_one_in_front_of_the_classifier():
    model = kcnn.lenet5()
    tuned = _with_dropout(model, 0.3)
    dropout = tuned.get_layer("dropout")
    assert dropout.rate == 0.3
    assert [layer.name for layer in tuned.layers][-4:] == ["fc2", "dropout", "fc3",
                                                           "predictions"]
    assert tuned.count_params() == model.count_params()
    assert tuned.metadata == model.metadata
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tuned(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-6)

    hp = kt.HyperParameters()
    hp.Fixed("dropout", 0.2)
    lenet = tuning.KcnnHyperModel("lenet5", space=hp).build(kt.HyperParameters())
    assert lenet.get_layer("dropout").rate == 0.2
    simple = tuning.KcnnHyperModel(
        "simple_cnn", builder_kwargs={"classes": 10}, space=hp).build(kt.HyperParameters())
    assert [layer.rate for layer in simple.layers
            if isinstance(layer, keras.layers.Dropout)] == [0.2, 0.2]  # the builder's own


def test_a_trial_trains_with_its_optimizer_and_a_weight_decay_that_suits_it():
    def recipe(**values):
        hp = kt.HyperParameters()
        for name, value in values.items():
            hp.Fixed(name, value)
        return tuning.KcnnHyperModel("lenet5", space=hp).trial_recipe(hp)

    assert recipe(learning_rate=0.01) == kcnn.training.RECIPES["default"]
    sgd = recipe(optimizer="sgd")
    assert (sgd.optimizer, sgd.weight_decay) == ("sgd", 5e-4)  # alexnet2012's coupled L2
    assert sgd.schedule == "cosine"  # the rest of the recipe stays
    assert recipe(optimizer="sgd", weight_decay=1e-3).weight_decay == 1e-3
    assert recipe(optimizer="adamw").weight_decay == 0.05


def test_the_search_space_defaults_and_overrides():
    default = tuning.search_space()
    assert [hp.name for hp in default.space] == ["learning_rate", "dropout"]
    assert default.space[0].sampling == "log" and default.space[1].sampling == "linear"

    space = tuning.search_space({"learning_rate": (1e-3, 1e-2), "dropout": None,
                                 "optimizer": ["adamw", "sgd"], "weight_decay": 1e-4})
    by_name = {hp.name: hp for hp in space.space}
    assert set(by_name) == {"learning_rate", "optimizer", "weight_decay"}
    assert (by_name["learning_rate"].min_value, by_name["learning_rate"].max_value) \
        == (1e-3, 1e-2)
    assert by_name["optimizer"].values == ["adamw", "sgd"]
    assert isinstance(by_name["weight_decay"], kt.engine.hyperparameters.Fixed)

    given = kt.HyperParameters()
    given.Choice("learning_rate", [0.01, 0.1])
    assert [hp.name for hp in tuning.search_space(given).space] == ["learning_rate"]

    for bad, match in [({"momentum": (0.8, 0.99)}, "unknown hyperparameters"),
                       ({"dropout": (0.0, 1.5)}, r"space\['dropout'\] must be a rate"),
                       ({"learning_rate": (0.1, 0.01)}, "low < high"),
                       ({"learning_rate": 0}, "a number > 0"),
                       ({"optimizer": ("adamw", "sgd")}, "is a choice"),
                       ({"optimizer": ["adam"]}, "one of")]:
        with pytest.raises(ValueError, match=match):
            tuning.search_space(bad)


def test_the_command_line_space_and_budget_errors(capsys):
    assert tuning.parse_space(["learning_rate=1e-4:1e-2", "optimizer=adamw,sgd",
                               "dropout=none", "weight_decay=0.01"]) == {
        "learning_rate": (1e-4, 1e-2), "optimizer": ["adamw", "sgd"], "dropout": None,
        "weight_decay": 0.01}
    parser = _parser()
    # The budget is checked once, by tune(): the command shows its message.
    for argv, match in [
            (["--tuner", "hyperband", "--max-trials", "3"],
             "max_trials does not apply to tuner='hyperband'"),
            (["--tuner", "hyperband", "--epochs", "3"], "epochs does not apply"),
            (["--tuner", "random", "--factor", "2"], "factor applies to tuner='hyperband'"),
            (["--tuner", "hyperband", "--factor", "1"], "factor must be an integer >= 2"),
            (["--tuner", "random", "--epochs", "0"], "epochs must be a positive integer"),
            (["--space", "learning_rate"], "NAME=SPEC"),
            (["--space", "dropout=lots"], "not a number")]:
        args = parser.parse_args(["tune", "lenet5", *argv])
        with pytest.raises(ValueError, match=match):
            args.run(args)
    # The standalone command (the jobs in tuning/) prints the error and exits 2.
    assert tune_command.main(["lenet5", "--tuner", "hyperband", "--max-trials", "3"]) == 2
    assert capsys.readouterr().err.startswith(
        "kcnn tune: max_trials does not apply to tuner='hyperband'")
    with pytest.raises(ValueError, match="max_trials does not apply to tuner='hyperband'"):
        tuning.tune("lenet5", "digits", directory="unused", tuner="hyperband", max_trials=3)


def test_the_model_is_positional_or_model_and_out_is_also_directory(capsys):
    parser = _parser()
    positional = parser.parse_args(["tune", "lenet5", "--out", "here"])
    option = parser.parse_args(["tune", "--model", "lenet5", "--directory", "here"])
    both = parser.parse_args(["tune", "lenet5", "--model", "lenet5"])
    for args in (positional, option, both):
        assert (args.model, args.run) == ("lenet5", tune_command.run)
    assert positional.out == option.out == "here"
    assert both.out == "runs/tune"
    with pytest.raises(SystemExit) as refused:
        parser.parse_args(["tune", "lenet5", "--model", "alexnet"])
    assert refused.value.code == 2
    assert "given twice: 'lenet5' and 'alexnet'" in capsys.readouterr().err
    assert tune_command.main(["--tuner", "random"]) == 2
    assert "kcnn tune: MODEL is required" in capsys.readouterr().err
    # The same through the `kcnn` command.
    kcnn_args = build_parser().parse_args(["tune", "--model", "lenet5", "--directory", "x"])
    assert (kcnn_args.model, kcnn_args.out, kcnn_args.run) == ("lenet5", "x", tune_command.run)
    assert kcnn_main(["tune", "lenet5", "--tuner", "random", "--factor", "2"]) == 2
    assert capsys.readouterr().err.startswith("kcnn tune: factor applies to tuner='hyperband'")


def test_python_m_kcnn_tuning_runs_the_command():
    # tuning/distributed.py starts its chief and workers this way.
    result = subprocess.run(
        [sys.executable, "-m", "kcnn.tuning", "--model", "lenet5", "--tuner", "hyperband",
         "--max-trials", "3"], cwd=ROOT, env={**os.environ, "KERAS_BACKEND": BACKEND},
        text=True, capture_output=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "kcnn tune: max_trials does not apply" in result.stderr


def test_the_plot_leaves_matplotlib_global_state_alone(tmp_path):
    # A notebook's own plots still show after a search: no backend switch and
    # no figure left in pyplot.
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        rows = [{"trial_id": str(i), "val_top1": 0.5 + i / 10, "learning_rate": 10.0 ** -i,
                 "dropout": i / 10} for i in range(1, 4)]
        report._plot(rows, tuning.search_space(), tmp_path / "tuning.png")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == []
    finally:
        matplotlib.use(previous)
    image = mpl_image.imread(tmp_path / "tuning.png")
    assert image.shape[0] > 100 and image.shape[1] > 400  # two panels side by side


def test_a_strategy_the_backend_cannot_run_is_refused(tmp_path):
    strategy, match = {"torch": ("mirrored", "no multi-device training on the torch"),
                       "tensorflow": ("data_parallel", "runs on the JAX backend"),
                       "jax": ("mirrored", "works only on the TensorFlow backend")}[BACKEND]
    with pytest.raises(ValueError, match=match):
        tuning.tune("lenet5", "digits", directory=tmp_path / "refused", strategy=strategy)
    assert not os.path.exists(tmp_path / "refused")


@pytest.mark.parametrize("job", ["lenet5-digits", "alexnet-cifar10", "resnet18-imagenette"])
def test_the_ready_jobs_are_valid_commands(job):
    script = runpy.run_path(os.path.join(ROOT, "tuning", f"{job}.py"), run_name="job")
    args = _parser().parse_args(["tune", *script["JOB"]])
    assert args.model in kcnn.list_models()
    assert args.out == f"runs/tune/{job}"
    tuning.parse_space(args.space)
    _check_budget(args.tuner, args.epochs, args.max_trials, args.max_epochs, args.factor)
