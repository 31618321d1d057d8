"""`kcnn.load_model`, `kcnn.predict`, `kcnn.evaluate` and `kcnn predict` on exported files.

One LeNet-5, trained a little on the digits, is exported once per format on
this backend (through a child process where another backend writes the
format); each file then opens in its own runtime and must give what the Keras
model gives: raw outputs, top-k names and probabilities of images, accuracy.
"""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

import kcnn
from kcnn.cli import main
from kcnn.data import load_digits
from kcnn.exporting.runtime import ExportedModel

FORMATS = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite", "openvino": ".xml", "pt2": ".pt2"}
NAMES = [f"digit{i}" for i in range(10)]


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    (x, y), (x_test, y_test) = load_digits()
    model = kcnn.lenet5(classes=10)
    model.metadata = {**model.metadata, "class_names": NAMES}
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    record = model.metadata["preprocessing"]
    scaled = (x[:512].astype("float32") * record["scale"] - record["mean"][0]) / record["std"][0]
    model.fit(scaled, y[:512], batch_size=64, epochs=2, verbose=0)
    root = tmp_path_factory.mktemp("exports")
    paths = {fmt: kcnn.export(model, root / f"lenet5{suffix}", format=fmt)
             for fmt, suffix in FORMATS.items()}
    return {"model": model, "paths": paths, "x": x_test[:40], "y": y_test[:40],
            "root": root}


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_model_opens_the_export_and_predicts_as_keras_does(lenet, fmt):
    model = lenet["model"]
    loaded = kcnn.load_model(lenet["paths"][fmt])
    assert isinstance(loaded, ExportedModel) and loaded.format == fmt
    assert loaded.metadata == json.loads(json.dumps(model.metadata))
    assert loaded.input_shape == (28, 28, 1) and loaded.classes == 10
    x = np.random.default_rng(0).normal(size=(5, 28, 28, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(loaded.predict(x, batch_size=2), expected, atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_and_evaluate_take_the_export_path(lenet, fmt):
    model, path, x, y = lenet["model"], lenet["paths"][fmt], lenet["x"], lenet["y"]
    ours, theirs = kcnn.predict(path, x[:4], top_k=3), kcnn.predict(model, x[:4], top_k=3)
    for a, b in zip(ours, theirs):
        assert [n for n, _ in a] == [n for n, _ in b]
        np.testing.assert_allclose([p for _, p in a], [p for _, p in b], atol=1e-5)
    result = kcnn.evaluate(path, (x, y), batch_size=16)
    reference = kcnn.evaluate(model, (x, y), batch_size=16)
    assert result["top1"] == reference["top1"] > 0.3  # chance is 0.1
    np.testing.assert_array_equal(result["confusion_matrix"], reference["confusion_matrix"])
    assert list(result["per_class"]) == NAMES


def test_cli_predict_runs_on_an_export(lenet, capsys):
    image = lenet["root"] / "digit.png"
    Image.fromarray(lenet["x"][0, :, :, 0]).save(image)
    assert main(["predict", str(lenet["paths"]["onnx"]), str(image), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image)
    (expected, _), _ = kcnn.predict(lenet["model"], str(image), top_k=2)[0]
    assert lines[1].split()[-1] == expected


def test_files_that_are_not_kcnn_exports_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        kcnn.load_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="model must be"):
        kcnn.predict(str(tmp_path / "notes.txt"), np.zeros((1, 8, 8, 1), np.uint8))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a file kcnn exports"):
        kcnn.load_model(str(tmp_path / "empty"))
