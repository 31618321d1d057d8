"""Export: the SavedModel serves raw images without kcnn, ONNX runs in onnxruntime.

Each backend exports its own model (under torch the export runs in a TensorFlow
process, automatically); the SavedModel is then loaded with
`tf.saved_model.load` in a fresh interpreter that never imports kcnn or Keras.
"""

import glob
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kcnn
from kcnn import exporting

BACKEND = keras.backend.backend()
PHOTOS = sorted(glob.glob(os.path.join(
    os.path.dirname(__import__("sklearn.datasets").datasets.__file__), "images", "*.jpg")))

# The fresh process: TensorFlow and numpy only. It calls each signature on the
# arrays saved in `inputs.npz` and saves every output to `outputs.npz`.
SERVE = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    assert "kcnn" not in sys.modules
    path, inputs, photos, out = sys.argv[1:5]
    loaded = tf.saved_model.load(path)
    results = {}
    for key, x in np.load(inputs).items():
        if key.startswith("serve_"):
            results[key] = loaded.signatures["serve"](tf.constant(x))["output_0"].numpy()
        elif key.startswith("pre_"):
            y = loaded.signatures["serving_preprocessed"](inputs=tf.constant(x))
            results[key] = y["probabilities"].numpy()
        elif key.startswith("raw_"):
            y = loaded.signatures["serving_default"](images=tf.constant(x))
            results[key] = y["probabilities"].numpy()
            results[key + "_names"] = y["top_k_names"].numpy().astype(str)
            results[key + "_indices"] = y["top_k_indices"].numpy()
    files = [open(p, "rb").read() for p in photos.split(",")]
    y = loaded.signatures["serving_encoded"](image_bytes=tf.constant(files))
    results["encoded"] = y["probabilities"].numpy()
    results["encoded_names"] = y["top_k_names"].numpy().astype(str)
    np.savez(out, **results)
""")


def serve_in_fresh_process(path, inputs, tmp_path):
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, str(script), str(path), str(tmp_path / "inputs.npz"),
         ",".join(PHOTOS), str(tmp_path / "outputs.npz")],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(tmp_path / "outputs.npz"))


def photos_uint8():
    import tensorflow as tf

    return [tf.io.decode_jpeg(open(p, "rb").read()).numpy() for p in PHOTOS]


def predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), np.float64)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def assert_close(actual, expected, rtol):
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def check_export(model, tmp_path, rtol=1e-5, from_file=False):
    """Export `model` (or its .keras file), serve it in a fresh TF process,
    compare with the model."""
    rng = np.random.default_rng(0)
    shape = tuple(model.inputs[0].shape[1:])
    x1, x9 = (rng.normal(size=(n,) + shape).astype("float32") for n in (1, 9))
    small = rng.integers(0, 256, size=(2, 40, 50, 3), dtype=np.uint8)
    path = tmp_path / "served"
    source = model
    if from_file:
        source = str(tmp_path / "model.keras")
        model.save(source)
    assert kcnn.export(source, path) == str(path)

    out = serve_in_fresh_process(path, {"serve_1": x1, "serve_9": x9, "pre_9": x9,
                                        "raw_small": small}, tmp_path)
    logits1, logits9 = predict(model, x1), predict(model, x9)
    assert_close(out["serve_1"], logits1, rtol)
    assert_close(out["serve_9"], logits9, rtol)
    assert_close(out["pre_9"], softmax(logits9), rtol)

    # Raw images and encoded files give kcnn.predict's answer.
    expected = kcnn.predict(model, small, top_k=3)
    assert_close(out["raw_small"].max(axis=1), [r[0][1] for r in expected], 1e-4)
    assert [list(n[:3]) for n in out["raw_small_names"]] == [[c for c, _ in r] for r in expected]
    expected = kcnn.predict(model, PHOTOS, top_k=5)
    assert [n[0] for n in out["encoded_names"]] == [r[0][0] for r in expected]
    assert_close(np.sort(out["encoded"], axis=1)[:, ::-1][:, :5],
                 [[p for _, p in r] for r in expected], 1e-4)
    return out


@pytest.mark.tf_only
def test_lenet5_serves_raw_rgb_and_encoded_images(tmp_path):
    # A grayscale model: RGB photos are converted inside the signature.
    model = kcnn.lenet5(classifier_activation=None)
    model.metadata = {**model.metadata, "class_names": [f"digit{i}" for i in range(10)]}
    out = check_export(model, tmp_path)
    assert out["encoded_names"].shape == (len(PHOTOS), 5)
    assert all(n.startswith("digit") for n in out["encoded_names"].ravel())


def test_alexnet_paper_with_lrn_exports_from_a_file_saved_on_every_backend(tmp_path):
    # Saved on this backend; under torch the export runs in a TensorFlow process.
    model = kcnn.alexnet(variant="paper", input_shape=(227, 227, 3),
                         classifier_activation=None)
    check_export(model, tmp_path, from_file=True)


@pytest.mark.tf_only
def test_resnet_exports_and_reloads_in_tfsmlayer(tmp_path):
    model = kcnn.resnet18(input_shape=(112, 112, 3), classes=10,
                          classifier_activation=None)
    check_export(model, tmp_path)
    layer = keras.layers.TFSMLayer(tmp_path / "served", call_endpoint="serve")
    x = np.random.default_rng(1).normal(size=(3, 112, 112, 3)).astype("float32")
    assert_close(keras.ops.convert_to_numpy(layer(x)), predict(model, x), 1e-5)


def test_channels_first_model_takes_channels_last_images(tmp_path, channels_first):
    if BACKEND == "tensorflow":
        pytest.skip("TensorFlow's CPU convolutions do not run channels_first")
    model = kcnn.lenet5(classifier_activation=None)
    check_export(model, tmp_path)


def test_keras_format_copies_a_saved_file(tmp_path):
    model = kcnn.lenet5()
    model.save(tmp_path / "m.keras")
    kcnn.export(str(tmp_path / "m.keras"), tmp_path / "copy.keras", format="keras")
    again = keras.saving.load_model(tmp_path / "copy.keras")
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(predict(again, x), predict(model, x))
    assert again.metadata == model.metadata


@pytest.mark.parametrize("name, kwargs", [
    pytest.param("lenet5", {}, marks=pytest.mark.tf_only),
    # The paper's feature extractor (LRN, grouped convolutions); its 55M-weight
    # classifier only slows the converters down.
    ("alexnet", {"variant": "paper", "input_shape": (227, 227, 3), "include_top": False}),
    # JAX exports ONNX through the TensorFlow route, which alexnet already covers.
    pytest.param("resnet18", {"input_shape": (64, 64, 3), "classes": 10},
                 marks=pytest.mark.skipif(BACKEND == "jax", reason="the TF route, as above")),
])
def test_onnx_runs_in_onnxruntime(name, kwargs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = kcnn.create_model(name, classifier_activation=None, **kwargs)
    path = tmp_path / f"{name}.onnx"
    kcnn.export(model, path, format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3,) + tuple(model.inputs[0].shape[1:]))
    x = x.astype("float32")
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert_close(y, predict(model, x), 1e-4)


def test_refuses_to_overwrite_and_overwrites_when_told(tmp_path):
    model = kcnn.lenet5()
    target = tmp_path / "m.keras"
    target.write_text("keep me")
    with pytest.raises(ValueError, match="overwrite=True"):
        kcnn.export(model, target, format="keras")
    assert target.read_text() == "keep me"
    kcnn.export(model, target, format="keras", overwrite=True)
    assert keras.saving.load_model(target).count_params() == model.count_params()
    (tmp_path / "empty").mkdir()  # an empty directory is free to use
    exporting._check_target(str(tmp_path / "empty"), overwrite=False)


def test_a_failure_half_way_leaves_nothing(tmp_path, monkeypatch):
    def half_written(model, out, **kwargs):
        os.makedirs(os.path.join(out, "variables"))
        open(os.path.join(out, "saved_model.pb"), "w").write("partial")
        raise OSError("disk full")

    monkeypatch.setitem(exporting._WRITERS, "keras", half_written)
    model = kcnn.lenet5()
    with pytest.raises(OSError, match="disk full"):
        kcnn.export(model, tmp_path / "new.keras", format="keras")
    assert os.listdir(tmp_path) == []

    # An existing export survives a failed overwrite untouched.
    (tmp_path / "old.keras").write_text("previous export")
    with pytest.raises(OSError, match="disk full"):
        kcnn.export(model, tmp_path / "old.keras", format="keras", overwrite=True)
    assert os.listdir(tmp_path) == ["old.keras"]
    assert (tmp_path / "old.keras").read_text() == "previous export"


@pytest.mark.parametrize("kwargs, match", [
    ({"format": "tflite"}, "format must be one of"),
    ({"top_k": 0}, "top_k must be a positive integer"),
    ({"format": "keras"}, "must end in '.keras'"),
])
def test_bad_arguments_are_named(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        kcnn.export(kcnn.lenet5(), tmp_path / "out", **kwargs)


def test_model_must_be_a_model_or_keras_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.keras': no such file"):
        kcnn.export(str(tmp_path / "missing.keras"), tmp_path / "out")
    with pytest.raises(ValueError, match="model must be"):
        kcnn.export(42, tmp_path / "out")


@pytest.mark.tf_only
def test_cli_exports_and_refuses_to_overwrite(tmp_path):
    kcnn.lenet5().save(tmp_path / "m.keras")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    command = [sys.executable, "-m", "kcnn", "export", str(tmp_path / "m.keras"),
               str(tmp_path / "served")]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert os.path.isfile(tmp_path / "served" / "saved_model.pb")
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 2
    assert "overwrite" in second.stderr
