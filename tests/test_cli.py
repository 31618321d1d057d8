"""The command line, run as a user runs it: each command in a fresh process, on
the backend of this test process.

One small run is trained once (`kcnn train` on a tiny image folder) and every
other command works on it, as a user chains them: evaluate, predict, export
(SavedModel and ONNX), summary, explain, finetune, tune. Each command's output
is checked against the trained model itself, loaded in this process.
"""

import json
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest

import kcnn

BACKEND = keras.backend.backend()
ONCE = pytest.mark.skipif(
    BACKEND != "torch",
    reason="does not depend on the backend (a table, name logic, argument checks): "
    "run once, on torch")

# Three classes a small network tells apart within two epochs: grey levels.
LEVELS = {"bright": 215, "dark": 40, "mid": 128}
NEW_LEVELS = {"high": 190, "low": 65}  # finetune's new classes


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "kcnn", *args], text=True,
                          capture_output=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": BACKEND})


def _image_folder(root, levels, per_split, seed):
    """root/<split>/<class>/<i>.png: 28x28 grayscale noise around each class's level."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in per_split.items():
        for name, level in levels.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.normal(level, 30, size=(28, 28)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return os.fspath(root)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`kcnn train` once; the chain's other commands use its model."""
    root = tmp_path_factory.mktemp("cli")
    data = _image_folder(root / "levels", LEVELS, {"train": 16, "test": 4}, seed=0)
    out = os.fspath(root / "run")
    result = run_cli("train", "lenet5", "--data", data, "--epochs", "2", "--batch-size", "8",
                     "--out", out)
    assert result.returncode == 0, result.stderr
    model_path = os.path.join(out, "model.keras")
    model = keras.saving.load_model(model_path)
    test = root / "levels" / "test"
    images = sorted(os.fspath(p) for p in test.glob("*/*.png"))
    labels = [os.path.basename(os.path.dirname(p)) for p in images]
    predicted = kcnn.predict(model, images, top_k=len(LEVELS))
    return types.SimpleNamespace(root=root, data=data, out=out, model_path=model_path,
                                 model=model, stdout=result.stdout, images=images,
                                 labels=labels, predicted=predicted)


def test_train_writes_a_finished_run_and_refuses_to_overwrite_it(run, capsys):
    from kcnn.cli import main

    assert run.stdout.strip().splitlines()[-1] == (
        f"trained lenet5 for 2 epochs; files in {run.out}")
    for name in ("model.keras", "best.keras", "log.csv", "history.json", "finished.json",
                 "curves.png", "confusion.png", "learning_rate.png"):
        assert os.path.isfile(os.path.join(run.out, name)), name
    assert run.model.metadata["class_names"] == sorted(LEVELS)
    with open(os.path.join(run.out, "history.json")) as f:
        assert json.load(f)["epochs"] == 2

    assert main(["train", "lenet5", "--data", run.data, "--epochs", "1",
                 "--out", run.out]) == 2
    assert "finished run" in capsys.readouterr().err


def test_evaluate_reports_the_accuracy_of_the_models_predictions(run):
    result = run_cli("evaluate", run.model_path, "--data", run.data, "--split", "test",
                     "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    words = lines[0].split()
    assert words[0::2] == ["loss", "top1", "top5"]
    correct = [ranked[0][0] == label for ranked, label in zip(run.predicted, run.labels)]
    assert float(words[3]) == pytest.approx(np.mean(correct), abs=1e-4)
    assert float(words[3]) >= 0.75  # it learned: chance is 1/3
    assert float(words[5]) == 1.0  # top-5 of three classes
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert sorted(rows) == sorted(LEVELS)
    for name, (_, recall, _, support) in rows.items():
        mine = [c for c, label in zip(correct, run.labels) if label == name]
        assert int(support) == len(mine) == 4
        assert float(recall) == pytest.approx(np.mean(mine), abs=1e-3)


def test_predict_prints_the_top_classes_of_each_image(run):
    images = run.images[::4]
    result = run_cli("predict", run.model_path, *images, "--top-k", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 * len(images)
    for i, path in enumerate(images):
        assert lines[3 * i] == path
        printed = [line.split() for line in lines[3 * i + 1:3 * i + 3]]
        expected = run.predicted[run.images.index(path)][:2]
        assert [name for _, name in printed] == [name for name, _ in expected]
        np.testing.assert_allclose([float(p) for p, _ in printed],
                                   [p for _, p in expected], atol=1e-4)


def test_export_writes_a_saved_model_that_serves_the_same_predictions(run):
    import tensorflow as tf

    path = os.fspath(run.root / "served")
    result = run_cli("export", run.model_path, path, "--top-k", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {path} (saved_model)"
    served = tf.saved_model.load(path)
    encoded = [open(p, "rb").read() for p in run.images]
    outputs = served.signatures["serving_encoded"](image_bytes=tf.constant(encoded))
    names = [[n.decode() for n in row] for row in outputs["top_k_names"].numpy()]
    assert names == [[n for n, _ in ranked[:2]] for ranked in run.predicted]
    expected = [[p for _, p in ranked[:2]] for ranked in run.predicted]
    np.testing.assert_allclose(outputs["top_k_probabilities"].numpy(), expected, atol=1e-4)


def test_export_writes_onnx_that_onnxruntime_runs_as_the_model(run):
    onnxruntime = pytest.importorskip("onnxruntime")
    path = os.fspath(run.root / "model.onnx")
    result = run_cli("export", run.model_path, path, "--format", "onnx")
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype("float32")
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    expected = keras.ops.convert_to_numpy(run.model(x))
    assert got.shape == (3, len(LEVELS))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_summary_prints_the_profile():
    result = run_cli("summary", "alexnet")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "features_12" in line)
    assert "195" in row  # the last pooling layer's receptive field
    assert "0.714" in result.stdout  # GMACs


def test_explain_writes_an_overlay_for_the_predicted_class(run):
    from PIL import Image

    out = os.fspath(run.root / "explained")
    image = run.images[0]
    result = run_cli("explain", run.model_path, image, "--out", out)
    assert result.returncode == 0, result.stderr
    overlay = os.path.join(out, "0_gradcam.png")
    name, probability = run.predicted[0][0]
    printed = result.stdout.split()
    assert printed[:4] == [image, "->", overlay, name]
    assert float(printed[4].strip("()")) == pytest.approx(probability, abs=1e-3)
    with Image.open(overlay) as picture:
        assert min(picture.size) >= 28


def test_finetune_gives_the_model_a_head_for_new_classes(run):
    data = _image_folder(run.root / "new", NEW_LEVELS, {"train": 12}, seed=1)
    out = os.fspath(run.root / "finetuned")
    result = run_cli("finetune", run.model_path, "--data", data, "--epochs", "2",
                     "--batch-size", "8", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "fine-tuned lenet5 for 2 epochs on 2 classes" in result.stdout
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert model.metadata["class_names"] == sorted(NEW_LEVELS)
    assert model.outputs[0].shape[-1] == 2
    with open(os.path.join(out, "history.json")) as f:
        assert json.load(f)["epochs"] == 2
    # The backbone is the trained model's: gradual unfreezing trains the head in
    # the first epoch and the last stage (fc1) too in the second, so the two
    # convolutional stages are still the trained ones.
    assert list(kcnn.transfer.stages(run.model)) == ["conv1", "conv2", "fc1"]
    for name, trained in (("conv1", False), ("conv2", False), ("fc1", True)):
        before = run.model.get_layer(name).get_weights()
        after = model.get_layer(name).get_weights()
        changed = any(not np.array_equal(a, b) for a, b in zip(before, after))
        assert changed == trained, name


def test_tune_searches_and_keeps_the_best_model(run):
    out = os.fspath(run.root / "tune")
    result = run_cli("tune", "lenet5", "--data", run.data, "--max-trials", "1", "--epochs",
                     "1", "--batch-size", "8", "--out", out)
    assert result.returncode == 0, result.stderr
    best_line = next(line for line in result.stdout.splitlines()
                     if line.startswith("best of 1 trials (1 run now): "))
    with open(os.path.join(out, "best_hyperparameters.json")) as f:
        best = json.load(f)
    assert best["model"] == "lenet5" and best["trials"]["completed"] == 1
    rate = best["hyperparameters"]["learning_rate"]
    assert f"learning_rate={rate:.4g}" in best_line
    assert f"val_top1 {best['score']:.4f}" in best_line
    with open(os.path.join(out, "trials.csv")) as f:
        assert len(f.read().strip().splitlines()) == 2  # the header and the one trial
    assert os.path.isfile(os.path.join(out, "tuning.png"))
    model = keras.saving.load_model(os.path.join(out, "best_model.keras"))
    assert model.metadata["class_names"] == sorted(LEVELS)


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
    model = kcnn.resnet18(classes=7, weights=out, classifier_activation=None,
                          input_shape=(64, 64, 3))
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    got = keras.ops.convert_to_numpy(model(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


@ONCE
def test_convert_reports_a_mismatch_and_refuses_to_overwrite(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from kcnn.cli import main

    pth = os.fspath(tmp_path / "r18.pth")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), pth)
    assert main(["convert", "resnet34", pth, os.fspath(tmp_path / "x.weights.h5")]) == 2
    assert "no tensors for layer 'layer1_2_conv1'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.weights.h5")

    existing = tmp_path / "r18.weights.h5"
    existing.write_bytes(b"kept")
    assert main(["convert", "resnet18", pth, os.fspath(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"kept"


@ONCE
def test_list_filters_names_and_shows_costs(capsys):
    from kcnn.cli import main

    assert main(["list", "resnet*"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:-1]
    assert [row.split()[0] for row in rows] == kcnn.list_models("resnet*")
    resnet50 = next(row.split() for row in rows if row.startswith("resnet50 "))
    assert resnet50[1:] == ["25,557,032", "4.089"]  # torchvision's figures


@ONCE
def test_weights_prints_the_table(capsys):
    from kcnn.cli import main

    assert main(["weights", "resnet5*"]) == 0
    table = capsys.readouterr().out
    assert "| resnet50 | `IMAGENET1K_V2` = `imagenet` | 80.858 | 95.434 | 97.8 |" in table


def test_preview_and_the_training_menu_from_the_command_line(run, tmp_path):
    from kcnn.cli import main

    png = os.fspath(tmp_path / "preview.png")
    assert main(["preview", "--data", run.data, "-n", "4", "--augment", "rotation=10",
                 "--out", png]) == 0
    assert os.path.getsize(png) > 0
    out = os.fspath(tmp_path / "run")
    assert main(["train", "lenet5", "--data", run.data, "--epochs", "1", "--batch-size",
                 "8", "--schedule", "step", "step_size=1", "--augment", "rotation=10",
                 "--class-weight", "balanced", "--out", out]) == 0
    assert os.path.isfile(os.path.join(out, "learning_rate.png"))
    assert main(["train", "lenet5", "--augment", "rotate=3"]) == 2


@ONCE
def test_tune_is_a_command_and_refuses_a_trial_budget_for_hyperband(capsys):
    from kcnn.cli import build_parser, main
    from kcnn.cli import tune

    args = build_parser().parse_args(["tune", "lenet5"])
    assert args.run is tune.run
    assert main(["tune", "lenet5", "--tuner", "hyperband", "--max-trials", "3"]) == 2
    assert "max_trials" in capsys.readouterr().err


@ONCE
def test_the_module_entry_points_still_run():
    modules = ("kcnn.demo", "kcnn.training.multihost")
    runs = [subprocess.Popen([sys.executable, "-m", module, "--help"], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "KERAS_BACKEND": BACKEND})
            for module in modules]  # side by side: each is mostly imports
    for module, process in zip(modules, runs):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        assert out.startswith(f"usage: python -m {module} ")


@ONCE
def test_finetune_names_a_missing_model(capsys):
    from kcnn.cli import main

    assert main(["finetune", "missing.keras", "--data", "x"]) == 2
    assert "model='missing.keras'" in capsys.readouterr().err
