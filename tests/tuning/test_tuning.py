"""kcnn.tuning on every backend: a real random search on the digits, resumed,
refused, failing; the dtype policy (and on JAX the distribution) that every
build() sees; the search space and the command line."""

import argparse
import csv
import functools
import json
import os
import runpy
import shutil

import keras
import keras_tuner as kt
from matplotlib import image as mpl_image
import numpy as np
import pytest

import kcnn
from kcnn import registry, tuning

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
    tuning.add_commands(parser.add_subparsers(dest="command", required=True))
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
        "tune", "--model", "lenet5", "--data", "digits", "--tuner", "random",
        "--max-trials", "3", "--epochs", "1", "--batch-size", "142",
        "--mixed-precision", POLICY, "--no-retrain", "--directory", str(directory)])
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
    tuned = tuning._with_dropout(model, 0.3)
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
    for argv, match in [
            (["--tuner", "hyperband", "--max-trials", "3"], "--max-trials does not apply"),
            (["--tuner", "hyperband", "--epochs", "3"], "--epochs does not apply"),
            (["--tuner", "random", "--factor", "2"], "--factor applies to --tuner hyperband"),
            (["--space", "learning_rate"], "NAME=SPEC"),
            (["--space", "dropout=lots"], "not a number")]:
        args = parser.parse_args(["tune", "--model", "lenet5", *argv])
        with pytest.raises(ValueError, match=match):
            args.run(args)
    # `python -m kcnn.tuning` prints the error and exits 2.
    assert tuning.main(["--model", "lenet5", "--tuner", "hyperband", "--max-trials", "3"]) == 2
    assert "--max-trials does not apply" in capsys.readouterr().err
    with pytest.raises(ValueError, match="max_trials does not apply to tuner='hyperband'"):
        tuning.tune("lenet5", "digits", directory="unused", tuner="hyperband", max_trials=3)


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
    assert args.directory == f"runs/tune/{job}"
    tuning.parse_space(args.space)
    tuning._check_budget(args.tuner, args.epochs, args.max_trials, args.max_epochs,
                         args.factor)
