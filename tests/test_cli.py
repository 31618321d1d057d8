"""The command line, run as a user runs it: in a fresh process."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kcnn

pytestmark = pytest.mark.tf_only


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "kcnn", *args], text=True,
                          capture_output=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"})


def test_list_filters_names_and_shows_costs():
    result = run_cli("list", "resnet*")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()[1:-1]
    assert [row.split()[0] for row in rows] == kcnn.list_models("resnet*")
    resnet50 = next(row.split() for row in rows if row.startswith("resnet50 "))
    assert resnet50[1:] == ["25,557,032", "4.089"]  # torchvision's figures


def test_weights_prints_the_table():
    result = run_cli("weights", "resnet5*")
    assert result.returncode == 0, result.stderr
    assert "| resnet50 | `IMAGENET1K_V2` = `imagenet` | 80.858 | 95.434 | 97.8 |" in result.stdout


def test_summary_prints_the_profile():
    result = run_cli("summary", "alexnet")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "features_12" in line)
    assert "195" in row  # the last pooling layer's receptive field
    assert "0.714" in result.stdout  # GMACs


def test_convert_writes_weights_that_load_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    pth = os.fspath(tmp_path / "r18.pth")
    out = os.fspath(tmp_path / "r18.weights.h5")
    torch.save(reference.state_dict(), pth)

    result = run_cli("convert", "resnet18", pth, out, "--classes", "7")
    assert result.returncode == 0, result.stderr
    model = kcnn.resnet18(classes=7, weights=out, classifier_activation=None)
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    got = keras.ops.convert_to_numpy(model(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())

    again = run_cli("convert", "resnet18", pth, out, "--classes", "7")
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_convert_reports_a_mismatch_clearly(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    pth = os.fspath(tmp_path / "r18.pth")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), pth)
    result = run_cli("convert", "resnet34", pth, os.fspath(tmp_path / "x.weights.h5"))
    assert result.returncode == 2
    assert "no tensors for layer 'layer1_2_conv1'" in result.stderr
    assert not os.path.exists(tmp_path / "x.weights.h5")


def test_train_evaluate_predict_round_trip(tmp_path):
    from PIL import Image

    from kcnn.data import load_digits

    out = os.fspath(tmp_path / "run")
    result = run_cli("train", "lenet5", "--data", "digits", "--epochs", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    model_path = os.path.join(out, "model.keras")
    assert os.path.exists(model_path)

    result = run_cli("evaluate", model_path, "--data", "digits")
    assert result.returncode == 0, result.stderr
    assert "top1" in result.stdout and "recall" in result.stdout

    _, (x, _) = load_digits()
    image = os.fspath(tmp_path / "digit.png")
    Image.fromarray(x[0, ..., 0]).save(image)
    result = run_cli("predict", model_path, image, "--top-k", "3")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 4

    explained = os.fspath(tmp_path / "explain")
    result = run_cli("explain", model_path, image, "--out", explained)
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(os.path.join(explained, "digit_gradcam.png"))

    again = run_cli("train", "lenet5", "--epochs", "1", "--out", out)
    assert again.returncode == 2 and "finished run" in again.stderr


def test_preview_and_the_training_menu_from_the_command_line(tmp_path):
    from kcnn.cli import main

    png = os.fspath(tmp_path / "preview.png")
    assert main(["preview", "-n", "4", "--augment", "rotation=10", "--out", png]) == 0
    assert os.path.getsize(png) > 0
    out = os.fspath(tmp_path / "run")
    assert main(["train", "lenet5", "--epochs", "1", "--schedule", "step", "step_size=1",
                 "--augment", "rotation=10", "--class-weight", "balanced",
                 "--out", out]) == 0
    assert os.path.isfile(os.path.join(out, "learning_rate.png"))
    assert main(["train", "lenet5", "--augment", "rotate=3"]) == 2


def test_tune_is_a_command_and_refuses_a_trial_budget_for_hyperband(capsys):
    from kcnn.cli import build_parser, main
    from kcnn.cli import tune

    args = build_parser().parse_args(["tune", "lenet5"])
    assert args.run is tune.run
    assert main(["tune", "lenet5", "--tuner", "hyperband", "--max-trials", "3"]) == 2
    assert "max_trials" in capsys.readouterr().err


def test_the_module_entry_points_still_run():
    for module in ("kcnn.demo", "kcnn.training.multihost"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], text=True,
                                capture_output=True, timeout=600,
                                env={**os.environ, "KERAS_BACKEND": "tensorflow"})
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: python -m {module} ")


def test_finetune_names_a_missing_model(capsys):
    from kcnn.cli import main

    assert main(["finetune", "missing.keras", "--data", "x"]) == 2
    assert "model='missing.keras'" in capsys.readouterr().err
