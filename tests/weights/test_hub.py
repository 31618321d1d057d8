"""Pretrained weights by name: download, verify, convert, cache, mirror, errors.

Files are published by a local HTTP server on 127.0.0.1 under registered tags;
no test touches the internet. KERAS_HOME points into tmp_path, so each test has
its own cache. One test serves a torchvision ResNet-18 (10 classes, seeded
random weights) and checks torchvision's logits; the others serve a small torch
twin of `kcnn.simple_cnn`, which builds in a tenth of the time.
"""

import contextlib
import hashlib
import http.server
import io
import os
import socket
import threading
import types

import keras
import numpy as np
import pytest

import kcnn
from kcnn.inspect import without_weights
from kcnn.weights import hub
from kcnn.weights.preprocessing import IMAGENET_MEAN, IMAGENET_STD, record
from tests.weights.test_torchvision_parity import (to_keras_layout, torch_logits,
                                                   torchvision_model)

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

TAG = "test_random_v1"
CLASS_NAMES = [f"class_{i}" for i in range(10)]
TINY = 28  # simple_cnn's reference input, here with 3 channels


class TorchSimpleCNN(torch.nn.Module):
    """`kcnn.simple_cnn` in torch, named as kcnn expects of a torchvision model."""

    def __init__(self, channels=3, classes=10):
        super().__init__()
        widths = (channels, 32, 64, 128)
        for i in range(1, 4):
            setattr(self, f"conv{i}", torch.nn.Conv2d(widths[i - 1], widths[i], 3, padding=1))
            setattr(self, f"bn{i}", torch.nn.BatchNorm2d(widths[i]))
        self.fc1 = torch.nn.Linear(128 * 3 * 3, 256)
        self.fc2 = torch.nn.Linear(256, classes)

    def features(self, x):
        for i in range(1, 4):
            x = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))
            x = torch.nn.functional.max_pool2d(torch.relu(x), 2)
        return x

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.features(x), 1))))


def publish(model, name):
    """The served file of a torch model: its state-dict bytes, hash and file name."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()
    return {"model": model, "data": data, "sha256": sha256,
            "file": f"{name}-{sha256[:8]}.pth"}


@pytest.fixture(scope="module")
def resnet18():
    return publish(torchvision_model("resnet18", num_classes=len(CLASS_NAMES)),
                   "resnet18_random")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = TorchSimpleCNN()
    with torch.no_grad():
        for i in range(1, 4):
            bn = getattr(model, f"bn{i}")
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return publish(model.eval(), "tiny_random")


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A fresh Keras cache; no mirror; local addresses bypass any proxy."""
    monkeypatch.setenv("KERAS_HOME", os.fspath(tmp_path / "keras"))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "keras" / "models" / "kcnn"


@pytest.fixture
def registered():
    """register(model_name, url, sha256, ...) for the test; removed afterwards."""
    added = []

    def register(model_name, url, sha256, **kwargs):
        kwargs.setdefault("class_names", CLASS_NAMES)
        if model_name == "simple_cnn":
            kwargs.setdefault("preprocessing", {"crop": TINY})
            kwargs.setdefault("builder_arguments", {"input_shape": (TINY, TINY, 3)})
        entry = kcnn.weights.register(model_name, TAG, url, sha256, **kwargs)
        added.append(model_name)
        return entry

    yield register
    for model_name in added:
        kcnn.weights.unregister(model_name, TAG)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files`: name -> (bytes, "ok" or "drop" half-way)."""

    def do_GET(self):
        body, behaviour = self.server.files.get(self.path.lstrip("/"), (None, None))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "drop":
            self.wfile.write(body[:len(body) // 2])  # then the connection closes
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(files):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files = files
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def refused_url(name):
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def build_tiny(**kwargs):
    kwargs = {"weights": TAG, "input_shape": (TINY, TINY, 3),
              "classifier_activation": None, **kwargs}
    return kcnn.simple_cnn(**kwargs)


def inputs(size, channels=3):
    return np.random.default_rng(0).normal(size=(2, channels, size, size)).astype("float32")


def assert_close(got, expected):
    got = keras.ops.convert_to_numpy(got)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def cache_files(cache):
    return sorted(os.listdir(cache)) if cache.exists() else []


def test_download_verifies_converts_caches_and_gives_torchvision_logits(
        resnet18, keras_home, registered, monkeypatch):
    x = inputs(64)
    expected = torch_logits(resnet18["model"], x)
    preprocessing = {"crop": 64, "resize": 72, "interpolation": "bicubic",
                     "mean": IMAGENET_MEAN, "std": IMAGENET_STD}

    def build():
        return kcnn.resnet18(weights=TAG, classes=10, input_shape=(64, 64, 3),
                             classifier_activation=None)

    with serving({resnet18["file"]: (resnet18["data"], "ok")}) as base:
        entry = registered("resnet18", f"{base}/{resnet18['file']}",
                           resnet18["sha256"][:8], preprocessing=preprocessing)
        model = build()
    assert cache_files(keras_home) == [os.path.basename(entry.cache_path)]
    assert entry.cache_path.endswith(f"resnet18_random-{resnet18['sha256'][:8]}.weights.h5")
    assert_close(model(to_keras_layout(x)), expected)
    assert model.metadata["class_names"] == CLASS_NAMES
    assert model.metadata["preprocessing"]["resize"] == 72
    assert model.metadata["preprocessing"]["interpolation"] == "bicubic"

    # The server is stopped and conversion made impossible: the cache serves.
    def unavailable(*args, **kwargs):
        raise AssertionError("the cached weights should need no download or torch")

    monkeypatch.setattr(hub, "_download", unavailable)
    monkeypatch.setattr(hub, "read_pth", unavailable)
    again = build()
    for a, b in zip(model.weights, again.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


def test_weights_fit_without_top_and_for_grayscale(tiny, keras_home, registered):
    x = inputs(TINY)
    with serving({tiny["file"]: (tiny["data"], "ok")}) as base:
        registered("simple_cnn", f"{base}/{tiny['file']}", tiny["sha256"])
        features = build_tiny(include_top=False, pooling="avg")
    reference = tiny["model"]
    with torch.no_grad():
        pooled = reference.features(torch.from_numpy(x)).mean(dim=(2, 3)).numpy()
    assert_close(features(to_keras_layout(x)), pooled)
    assert features.metadata["preprocessing"]["crop"] == TINY

    gray = x[:, :1]
    model = build_tiny(input_shape=(TINY, TINY, 1))
    assert_close(model(to_keras_layout(gray)),
                 torch_logits(reference, np.repeat(gray, 3, axis=1)))


@pytest.mark.parametrize("failure", ["wrong hash", "dropped connection", "refused port"])
def test_failures_name_the_url_and_leave_nothing_in_the_cache(
        tiny, keras_home, registered, failure):
    name = tiny["file"]
    sha256 = tiny["sha256"]
    files = {name: (tiny["data"], "drop" if failure == "dropped connection" else "ok")}
    with serving(files) as base:
        url = refused_url(name) if failure == "refused port" else f"{base}/{name}"
        if failure == "wrong hash":
            sha256 = "0123abcd" if not sha256.startswith("0123abcd") else "abcd0123"
        registered("simple_cnn", url, sha256)
        with pytest.raises(kcnn.weights.WeightsDownloadError) as error:
            build_tiny()
    message = str(error.value)
    assert url in message and f"weights='/path/to/{name}'" in message
    assert hub.MIRROR_ENV in message
    expected = {"wrong hash": "SHA-256", "dropped connection": "stopped after",
                "refused port": "Connection refused"}[failure]
    assert expected in message
    assert cache_files(keras_home) == []


@pytest.mark.parametrize("mirror", ["directory", "base url"])
def test_mirror_serves_the_file_with_the_origin_unreachable(
        tiny, keras_home, registered, monkeypatch, tmp_path, mirror):
    name = tiny["file"]
    registered("simple_cnn", refused_url(name), tiny["sha256"])
    with contextlib.ExitStack() as stack:
        if mirror == "directory":
            folder = tmp_path / "mirror"
            folder.mkdir()
            (folder / name).write_bytes(tiny["data"])
            monkeypatch.setenv(hub.MIRROR_ENV, os.fspath(folder))
        else:
            base = stack.enter_context(serving({name: (tiny["data"], "ok")}))
            monkeypatch.setenv(hub.MIRROR_ENV, base + "/")
        model = build_tiny()
    kernel = tiny["model"].state_dict()["conv1.weight"].numpy()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel),
                                  kernel.transpose(2, 3, 1, 0))


def test_a_mirror_that_is_neither_url_nor_directory_is_refused(
        tiny, keras_home, registered, monkeypatch, tmp_path):
    registered("simple_cnn", refused_url(tiny["file"]), tiny["sha256"])
    monkeypatch.setenv(hub.MIRROR_ENV, os.fspath(tmp_path / "nowhere"))
    with pytest.raises(kcnn.weights.WeightsDownloadError, match="nor an existing directory"):
        build_tiny()
    assert cache_files(keras_home) == []


def test_weight_names_resolve_as_in_keras_applications():
    assert kcnn.weights.get_weights("resnet50", "imagenet").tag == "IMAGENET1K_V2"
    assert kcnn.weights.get_weights("resnet50", "DEFAULT").tag == "IMAGENET1K_V2"
    assert kcnn.weights.get_weights("resnet50", "IMAGENET1K_V1").url.endswith(
        "resnet50-0676ba61.pth")
    with pytest.raises(ValueError, match=r"classes=1000 .*received classes=10"):
        kcnn.resnet18(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match=r"'imagenet', 'IMAGENET1K_V1', 'IMAGENET1K_V2'"):
        kcnn.resnet50(weights="IMAGENET1K_V3")
    with pytest.raises(ValueError, match="lenet5 has no published weights"):
        kcnn.lenet5(weights="imagenet")
    with pytest.raises(ValueError, match="include_top=False"):
        kcnn.vgg16(weights="IMAGENET1K_FEATURES")
    with pytest.raises(ValueError, match=r"width_mult=0.5 does not fit weights='imagenet'"):
        kcnn.mobilenet_v2(weights="imagenet", width_mult=0.5)
    with pytest.raises(ValueError, match=r"variant='paper' does not fit"):
        kcnn.alexnet(weights="imagenet", variant="paper")


def test_register_checks_its_arguments(registered):
    url = "https://example.com/w-0123abcd.pth"
    with pytest.raises(ValueError, match="Unknown model name='resnet5'"):
        kcnn.weights.register("resnet5", "x", url, "0123abcd")
    for tag in ("imagenet", "DEFAULT", "", "a/b"):
        with pytest.raises(ValueError, match="tag must be"):
            kcnn.weights.register("simple_cnn", tag, url, "0123abcd")
    with pytest.raises(ValueError, match="url must be"):
        kcnn.weights.register("simple_cnn", "x", "ftp://example.com/w.pth", "0123abcd")
    with pytest.raises(ValueError, match="sha256 must be"):
        kcnn.weights.register("simple_cnn", "x", url, "0123")
    with pytest.raises(ValueError, match="class_names must be"):
        kcnn.weights.register("simple_cnn", "x", url, "0123abcd", class_names="cat")
    with pytest.raises(ValueError, match="preprocessing must be"):
        kcnn.weights.register("simple_cnn", "x", url, "0123abcd", preprocessing={"size": 3})
    registered("simple_cnn", url, "0123abcd")
    with pytest.raises(ValueError, match="overwrite=True"):
        registered("simple_cnn", url, "0123abcd")
    assert kcnn.weights.get_weights("simple_cnn", TAG).classes == len(CLASS_NAMES)


def test_googlenet_weights_switch_on_transform_input(monkeypatch):
    entry = kcnn.weights.get_weights("googlenet", "imagenet")
    assert entry.builder_arguments == {"transform_input": True}
    loaded = []
    monkeypatch.setattr(hub, "load", lambda model, entry, *args, **kwargs: loaded.append(entry))
    # Built without weights: the layers and metadata are what is checked, and
    # on JAX allocating GoogLeNet compiles an initializer per weight shape.
    with without_weights():
        model = kcnn.googlenet(weights="imagenet")
    assert loaded == [entry]
    assert "transform_input" in {layer.name for layer in model.layers}
    assert model.metadata["weights"]["tag"] == "IMAGENET1K_V1"


def test_preprocess_input_and_decode_predictions(channels_first):
    from kcnn.models.resnet import preprocess_input as resnet_preprocess
    from kcnn.models.vgg import preprocess_input as vgg_preprocess

    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 3, 4, 5)).astype(np.uint8)
    mean = np.array([0.485, 0.456, 0.406]).reshape(3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(3, 1, 1)
    got = resnet_preprocess(pixels)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, (pixels / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vgg_preprocess(pixels, weights="IMAGENET1K_FEATURES"),
                               pixels - 255 * np.array([0.48235, 0.45882, 0.40784]
                                                       ).reshape(3, 1, 1), atol=1e-3)
    channels_last = np.moveaxis(pixels, 1, -1)
    tensor = kcnn.weights.preprocess_input(keras.ops.convert_to_tensor(channels_last),
                                           data_format="channels_last")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor),
                               np.moveaxis(got, 1, -1), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="names no weights"):
        resnet_preprocess(pixels, weights="IMAGENET1K_FEATURES")
    digits = types.SimpleNamespace(metadata={"preprocessing": record(crop=28, channels=1)})
    np.testing.assert_allclose(kcnn.weights.preprocess_input(pixels[:, :1], digits),
                               pixels[:, :1] / 255.0, rtol=1e-6)

    scores = np.zeros((2, 1000), np.float32)
    scores[0, [0, 1]] = [0.9, 0.1]
    scores[1, 999] = 1.0
    decoded = kcnn.weights.decode_predictions(scores, top=2)
    assert decoded[0] == [("n01440764", "tench", pytest.approx(0.9)),
                          ("n01443537", "goldfish", pytest.approx(0.1))]
    assert decoded[1][0][:2] == ("n15075141", "toilet tissue")
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\)"):
        kcnn.weights.decode_predictions(scores[:, :10])


def test_commands_list_and_fetch(capsys, tiny, keras_home, registered):
    from kcnn.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["weights", "resnet5*"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "| resnet50 | `IMAGENET1K_V2` = `imagenet` | 80.858 | 95.434 | 97.8 |" in out
    assert "resnet18" not in out

    with serving({tiny["file"]: (tiny["data"], "ok")}) as base:
        entry = registered("simple_cnn", f"{base}/{tiny['file']}", tiny["sha256"])
        args = parser.parse_args(["fetch", "simple_cnn", TAG])
        assert args.run(args) == 0
    assert entry.cache_path in capsys.readouterr().out
    assert os.path.isfile(entry.cache_path)
    args = parser.parse_args(["fetch", "simple_cnn", "IMAGENET1K_V9"])
    with pytest.raises(ValueError, match="names no weights"):
        args.run(args)
