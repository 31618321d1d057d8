"""Export: the SavedModel serves raw images without kcnn, ONNX runs in onnxruntime.

Each backend builds, trains (two SGD steps, so that weights and batch-norm
statistics are no longer the initial ones) and exports its own models: directly
on TensorFlow and JAX, through a TensorFlow process under torch. Every
SavedModel of the module is then loaded with `tf.saved_model.load` in ONE fresh
interpreter that never imports kcnn, and its three signatures are compared with
the Keras model in this process.
"""

import glob
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kcnn
from kcnn import exporting
from kcnn.exporting import metadata
from kcnn.cli import main

BACKEND = keras.backend.backend()
PHOTOS = sorted(glob.glob(os.path.join(
    os.path.dirname(__import__("sklearn.datasets").datasets.__file__), "images", "*.jpg")))
# Outputs agree within this fraction of their largest magnitude.
RTOL = 1e-4

# The fresh process: TensorFlow and numpy only. For each job it loads the
# SavedModel, calls each signature on the arrays in the job's inputs file and
# on the encoded photos, and saves every output to the job's outputs file.
SERVE = textwrap.dedent("""
    import json
    import sys
    import numpy as np
    import tensorflow as tf

    assert "kcnn" not in sys.modules
    jobs, photos = json.load(open(sys.argv[1])), sys.argv[2].split(",")
    files = tf.constant([open(p, "rb").read() for p in photos])
    for job in jobs:
        loaded = tf.saved_model.load(job["path"])
        results = {}
        for key, x in np.load(job["inputs"]).items():
            if key.startswith("serve_"):
                y = loaded.signatures["serve"](tf.constant(x))
                results[key] = y["output_0"].numpy()
                continue
            if key.startswith("pre_"):
                y = loaded.signatures["serving_preprocessed"](inputs=tf.constant(x))
            else:
                y = loaded.signatures["serving_default"](images=tf.constant(x))
            results[key] = y["probabilities"].numpy()
        y = loaded.signatures["serving_encoded"](image_bytes=files)
        results["encoded"] = y["probabilities"].numpy()
        for name in ("top_k_indices", "top_k_probabilities", "top_k_names"):
            value = y[name].numpy()
            results["encoded_" + name] = value.astype(str) if value.dtype == object else value
        np.savez(job["outputs"], **results)
""")


def trained(model, steps=2, batch_size=8):
    """`model` after `steps` SGD steps on random data, on this backend."""
    rng = np.random.default_rng(1)
    n = steps * batch_size
    x = rng.normal(size=(n,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    y = rng.integers(0, model.outputs[0].shape[-1], size=n)
    before = [w.numpy().copy() for w in model.weights]
    # A small rate keeps the logits near zero: saturated ones would make the
    # signatures' probabilities blind to the input.
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    # Every weight moved, batch-norm moving statistics included.
    unchanged = [w.path for w, b in zip(model.weights, before)
                 if np.array_equal(w.numpy(), b)]
    assert not unchanged, f"training left these weights at their initial values: {unchanged}"
    return model


def trained_lenet5():
    # A grayscale model: RGB photos are converted inside the signatures.
    model = kcnn.lenet5(classifier_activation=None)
    model.metadata = {**model.metadata, "class_names": [f"digit{i}" for i in range(10)]}
    return trained(model)


@pytest.fixture(scope="module")
def lenet5():
    keras.utils.set_random_seed(0)
    return trained_lenet5()


@pytest.fixture(scope="module")
def resnet18():
    keras.utils.set_random_seed(0)
    return trained(kcnn.resnet18(input_shape=(32, 32, 3), classes=10,
                                 classifier_activation=None))


@pytest.fixture(scope="module")
def lenet5_channels_first():
    if BACKEND == "tensorflow":
        return None  # TensorFlow's CPU convolutions do not run channels_first
    fmt = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        keras.utils.set_random_seed(0)
        return trained_lenet5()
    finally:
        keras.config.set_image_data_format(fmt)


def inputs_for(model):
    rng = np.random.default_rng(0)
    shape = tuple(model.inputs[0].shape[1:])
    x1, x9 = (rng.normal(size=(n,) + shape).astype("float32") for n in (1, 9))
    small = rng.integers(0, 256, size=(2, 40, 50, 3), dtype=np.uint8)
    return {"serve_1": x1, "serve_9": x9, "pre_9": x9, "raw_small": small}


def cli_export(model, work):
    """`kcnn export MODEL.keras PATH` of a file saved on this backend, run on
    this backend (tests/test_cli.py starts `python -m kcnn` itself)."""
    model.save(work / "alexnet.keras")
    assert main(["export", str(work / "alexnet.keras"), str(work / "alexnet_cli")]) == 0
    return work / "alexnet_cli"


@pytest.fixture(scope="module")
def served(tmp_path_factory, lenet5, resnet18, lenet5_channels_first):
    """Each export of this module and its outputs from one fresh TensorFlow process.

    Maps a name to `(model, path, outputs)`; an export that failed maps to its
    error, which the test of that export raises.
    """
    work = tmp_path_factory.mktemp("served")
    keras.utils.set_random_seed(0)
    alexnet = kcnn.alexnet(variant="paper", input_shape=(227, 227, 3),
                           classifier_activation=None)
    exports = {
        "lenet5": (lenet5, lambda: kcnn.export(lenet5, work / "lenet5")),
        "resnet18": (resnet18, lambda: kcnn.export(resnet18, work / "resnet18")),
        "alexnet_cli": (alexnet, lambda: cli_export(alexnet, work)),
    }
    if lenet5_channels_first is not None:
        exports["channels_first"] = (
            lenet5_channels_first,
            lambda: kcnn.export(lenet5_channels_first, work / "channels_first"))
    results, jobs = {}, []
    for name, (model, export) in exports.items():
        try:
            path = export()
        except Exception as e:  # noqa: BLE001  (raised again by the test of this export)
            results[name] = e
            continue
        np.savez(work / f"{name}_in.npz", **inputs_for(model))
        jobs.append({"name": name, "path": str(path), "inputs": str(work / f"{name}_in.npz"),
                     "outputs": str(work / f"{name}_out.npz")})
        results[name] = (model, pathlib.Path(path), None)
    (work / "jobs.json").write_text(json.dumps(jobs))
    (work / "serve.py").write_text(SERVE)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, str(work / "serve.py"), str(work / "jobs.json"), ",".join(PHOTOS)],
        env=env, capture_output=True, text=True, timeout=600)
    for job in jobs:
        model, path, _ = results[job["name"]]
        if done.returncode != 0:
            results[job["name"]] = AssertionError(f"serving failed:\n{done.stderr[-3000:]}")
        else:
            results[job["name"]] = (model, path, dict(np.load(job["outputs"])))
    return results


def check_served(served, name):
    """The SavedModel `name` gives the model's answers on all three signatures."""
    result = served[name]
    if isinstance(result, Exception):
        raise result
    model, path, out = result
    x = inputs_for(model)
    logits1, logits9 = predict(model, x["serve_1"]), predict(model, x["serve_9"])
    assert_close(out["serve_1"], logits1)
    assert_close(out["serve_9"], logits9)
    assert_close(out["pre_9"], softmax(logits9))

    # Raw images and encoded files: kcnn.predict's probabilities, class by class
    # (it lays batches out as the model's data format, whatever Keras's setting).
    assert_close(out["raw_small"], predicted_probabilities(model, x["raw_small"]))
    expected = predicted_probabilities(model, PHOTOS)
    assert_close(out["encoded"], expected)
    # The two photos' answers differ far beyond the tolerance: the comparisons
    # above see the input.
    assert np.ptp(expected, axis=0).max() > 100 * RTOL * np.abs(expected).max()
    # The top k: the largest probabilities, in order, with their class names.
    names = np.array(metadata.class_names(model, model.metadata))
    indices, top = out["encoded_top_k_indices"], out["encoded_top_k_probabilities"]
    assert indices.shape == (len(PHOTOS), min(5, len(names)))
    np.testing.assert_array_equal(out["encoded_top_k_names"], names[indices])
    np.testing.assert_array_equal(top, np.take_along_axis(out["encoded"], indices, axis=1))
    np.testing.assert_array_equal(top, -np.sort(-out["encoded"], axis=1)[:, :indices.shape[1]])
    return path, out


def predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), np.float64)


def predicted_probabilities(model, images):
    """kcnn.predict's probabilities for `images`, one row per image in class order."""
    names = metadata.class_names(model, model.metadata)
    column = {name: i for i, name in enumerate(names)}
    rows = kcnn.predict(model, images, top_k=len(names))
    probabilities = np.zeros((len(rows), len(names)))
    for row, ranked in zip(probabilities, rows):
        for name, p in ranked:
            row[column[name]] = p
    return probabilities


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def assert_close(actual, expected, rtol=RTOL):
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def test_lenet5_trained_here_serves_raw_rgb_and_encoded_images(served):
    _, out = check_served(served, "lenet5")
    assert all(n.startswith("digit") for n in out["encoded_top_k_names"].ravel())


def test_resnet18_trained_here_serves_all_three_signatures(served):
    # Batch norm in inference mode: the moving statistics that training moved.
    check_served(served, "resnet18")


def test_channels_first_model_takes_channels_last_images(served):
    if BACKEND == "tensorflow":
        pytest.skip("TensorFlow's CPU convolutions do not run channels_first")
    check_served(served, "channels_first")


def test_cli_exports_alexnet_paper_saved_on_this_backend_and_refuses_to_overwrite(
        served, capsys):
    # The paper's AlexNet (LRN, grouped convolutions), exported by `kcnn export`
    # from its .keras file (see `served`); under torch in a TensorFlow process.
    path, _ = check_served(served, "alexnet_cli")
    before = sorted(os.listdir(path))
    assert main(["export", str(path.parent / "alexnet.keras"), str(path)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert sorted(os.listdir(path)) == before


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="keras.layers.TFSMLayer exists on the TensorFlow backend only "
                    "(the other backends' exports are loaded with tf.saved_model.load above)")
def test_resnet_export_reloads_in_tfsmlayer(served, resnet18):
    path, _ = check_served(served, "resnet18")
    layer = keras.layers.TFSMLayer(path, call_endpoint="serve")
    x = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype("float32")
    assert_close(keras.ops.convert_to_numpy(layer(x)), predict(resnet18, x))


def test_keras_format_copies_a_saved_file(tmp_path):
    model = kcnn.lenet5()
    model.save(tmp_path / "m.keras")
    kcnn.export(str(tmp_path / "m.keras"), tmp_path / "copy.keras", format="keras")
    again = keras.saving.load_model(tmp_path / "copy.keras")
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(predict(again, x), predict(model, x))
    assert again.metadata == model.metadata


@pytest.mark.parametrize("name", [
    "lenet5",
    # Batch norm with trained statistics. JAX exports ONNX through its .keras
    # file in a TensorFlow process (jax2onnx fails on max pooling): that route is
    # the same for every model, and lenet5 and alexnet already take it.
    pytest.param("resnet18", marks=pytest.mark.skipif(
        BACKEND == "jax", reason="JAX's ONNX route (a TensorFlow process) is lenet5's")),
    # The paper's feature extractor (LRN, grouped convolutions); its 55M-weight
    # classifier only slows the converters down.
    "alexnet_features",
    # Depthwise convolutions, squeeze-and-excitation, swish; batch norms with
    # the statistics of real activations (tests/export/graph_models.py).
    *(pytest.param(name, marks=pytest.mark.skipif(
        BACKEND != "tensorflow", reason="every graph family is exported from TensorFlow; "
        "from JAX and torch the route is the same for every model, and the models above "
        "take it")) for name in ("mobilenet_v2", "efficientnet_b0")),
])
def test_onnx_runs_in_onnxruntime(name, request, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if name == "alexnet_features":
        model = kcnn.alexnet(variant="paper", input_shape=(227, 227, 3), include_top=False)
    elif name in ("mobilenet_v2", "efficientnet_b0"):
        from tests.export import graph_models

        model = graph_models.model(name)
    else:
        model = request.getfixturevalue(name)
    path = tmp_path / f"{name}.onnx"
    kcnn.export(model, path, format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3,) + tuple(model.inputs[0].shape[1:]))
    x = x.astype("float32")
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert_close(y, predict(model, x))


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
    def half_written(format, model, out, **kwargs):
        os.makedirs(os.path.join(out, "variables"))
        open(os.path.join(out, "saved_model.pb"), "w").write("partial")
        raise OSError("disk full")

    monkeypatch.setattr(exporting, "_write", half_written)
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
