"""export(format="torchvision"): torchvision's own builder loads the file with
strict=True and gives the Keras model's outputs.

Each Keras model gets the weights of a torchvision model with seeded random
weights and batch-norm statistics that are not the initial ones (random
positive variances, non-zero means, scales and shifts), small (32x32, 3
classes), and is exported; the file must hold exactly the source's tensors, in
torchvision's key order, and a second torchvision model loading it with
strict=True must give the Keras model's outputs within 1e-4 of their scale.

What runs where, for the CI budget: the conversion is numpy on the weights'
values, the same on every backend. ResNet-18 is exported, loaded by
torchvision and reloaded by kcnn on every backend (kcnn.export from each);
GoogLeNet, DenseNet-121, MobileNetV2 (depthwise kernels) and EfficientNet-B0 on
TensorFlow and torch, not on JAX, which compiles each family's forward (10-120 s
a family on 2 loaded cores; their Keras forward on JAX is
tests/weights/test_torchvision_parity.py's). AlexNet's and VGG's classifiers
(55M and 120M weights) are too big for the budget: their names and shapes are
checked on the meta device, and the flatten reordering of their first dense
layer numerically, in both data formats, on a LeNet-5 against torch's own
flatten. Names, refusals of big models and the grayscale case are
backend-independent and run on torch only.
"""

import os
import sys

import keras
import numpy as np
import pytest

import kcnn
from kcnn.exporting import torchvision as torchvision_export
from kcnn.inspect import without_weights
from kcnn.weights import load_state_dict
from kcnn.weights import torch_state_dict as mapping
from kcnn.weights.torch_state_dict import to_state_dict
from tests.weights import test_torchvision_parity as parity

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

CLASSES = 3
X = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype("float32")  # NCHW
ON_TORCH_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="backend-independent: names, shapes and the conversion are numpy on the "
           "weights' values, the same on every backend (resnet18 checks the export from "
           "every backend); runs once, on torch, the fastest to build")
NOT_ON_JAX = pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="CI budget: JAX compiles each family's forward (10-120 s a family on 2 "
           "loaded cores); the conversion is numpy, the same on every backend, resnet18 "
           "checks the export from JAX, and test_torchvision_parity each family's Keras "
           "forward on JAX")


def torchvision_model(name, seed):
    """test_torchvision_parity's seeded torchvision model, as this module's twin builds it."""
    return parity.torchvision_model(name, seed=seed, num_classes=CLASSES,
                                    **parity.TORCHVISION_ARGUMENTS.get(name, {}))


def keras_layout(x_nchw):
    if keras.config.image_data_format() == "channels_last":
        return x_nchw.transpose(0, 2, 3, 1)
    return x_nchw


def forward(model, x_nchw):
    # On JAX, `predict_on_batch` compiles the model once; an eager call compiles
    # each operation (ResNet-18: 1 s against 4.5 s here).
    if keras.backend.backend() == "jax":
        return model.predict_on_batch(keras_layout(x_nchw))
    return keras.ops.convert_to_numpy(model(keras_layout(x_nchw), training=False))


def torch_outputs(net, x_nchw):
    with torch.no_grad():
        return net.eval()(torch.from_numpy(x_nchw)).numpy()


def assert_close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """builder -> (source state dict, exported .pth, the Keras model's outputs on X
    and its weights), exported once per module.

    The Keras model gets a torchvision model's random weights (`weights=`) and
    is built and exported inside `kcnn.inspect.without_weights()`: its
    variables hold the loaded values only, none is randomly initialised first
    (what dominates on JAX: 16 s for ResNet-18 against 0.8 s here).
    """
    done = {}

    def export(name):
        if name not in done:
            directory = tmp_path_factory.mktemp(name)
            source = torchvision_model(name, seed=0).state_dict()
            torch.save(source, directory / "source.pth")
            with without_weights():
                model = kcnn.create_model(name, classes=CLASSES, input_shape=(32, 32, 3),
                                          classifier_activation=None,
                                          weights=os.fspath(directory / "source.pth"))
                path = kcnn.export(model, directory / f"{name}.pth", format="torchvision")
                done[name] = source, path, forward(model, X), model.get_weights()
        return done[name]

    return export


def check_export(exported, name):
    source, path, expected, _ = exported(name)
    state = torch.load(path, weights_only=True)
    assert list(state) == list(source)  # torchvision's keys, in its order
    for key, tensor in source.items():  # the loader's inverse, bit for bit
        torch.testing.assert_close(state[key], tensor, rtol=0, atol=0, msg=key)
    net = torchvision_model(name, seed=1)  # other weights, all replaced by the file's
    net.load_state_dict(state, strict=True)
    assert_close(torch_outputs(net, X), expected)
    record = torchvision_export.read_metadata(path)  # <path>.json beside it
    assert (record["format"], record["name"]) == ("torchvision", name)


def test_torchvision_resnet18_loads_the_export_strictly_with_the_same_outputs(exported):
    check_export(exported, "resnet18")


@NOT_ON_JAX
@pytest.mark.parametrize("name", ["googlenet", "densenet121", "mobilenet_v2",
                                  "efficientnet_b0"])
def test_torchvision_builder_loads_the_export_strictly_with_the_same_outputs(exported, name):
    check_export(exported, name)


def test_export_reloads_into_a_kcnn_builder_with_identical_weights(exported):
    """The round trip through kcnn's own loader (`weights=path`): every weight
    of the exported model back bit for bit, batch-norm statistics included."""
    _, path, _, weights = exported("resnet18")
    with without_weights():
        again = kcnn.resnet18(classes=CLASSES, input_shape=(32, 32, 3),
                              classifier_activation=None, weights=path)
        got = again.get_weights()
    assert len(got) == len(weights)
    for a, b in zip(got, weights):
        np.testing.assert_array_equal(a, b)


@ON_TORCH_ONLY
@pytest.mark.parametrize("name", ["alexnet", "vgg11_bn"])
def test_names_and_shapes_of_the_big_classifiers_are_torchvisions(name):
    """AlexNet and VGG-11 with batch norm: each key and shape of the state dict
    is torchvision's, read on the meta device (a real classifier is 55M or 120M
    weights): kcnn's model is built on the meta device too, and its layers are
    converted with the exporter's own table from zero-cost stand-in values."""
    with keras.device("meta"):
        model = kcnn.create_model(name, classes=CLASSES, input_shape=(64, 64, 3))
    with torch.device("meta"):
        net = getattr(torchvision.models, name)(num_classes=CLASSES)
    got = {key: value.shape for layer in mapping._weighted_layers(model)
           for key, value in mapping._torch_tensors(
               layer, [np.broadcast_to(np.float32(0), v.shape) for v in layer.weights])}
    assert got == {k: tuple(v.shape) for k, v in net.state_dict().items()}


class TorchLeNet5(torch.nn.Module):
    """kcnn's LeNet-5 at 32x32 in PyTorch, named as kcnn's layers: the flatten
    of a (16, 5, 5) map before fc1, the case that reorders a dense kernel."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 6, 5), torch.nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84)
        self.fc3 = torch.nn.Linear(84, 10)

    def forward(self, x):
        pool = torch.nn.functional.avg_pool2d
        x = pool(torch.tanh(self.conv1(x)), 2)
        x = pool(torch.tanh(self.conv2(x)), 2).flatten(1)
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_state_dict_of_a_flattening_model_is_torchs_in_both_data_formats(data_format):
    """LeNet-5's fc1 reads a flattened map: the loaded model gives torch's
    outputs, and `to_state_dict` gives torch's tensors back exactly."""
    keras.config.set_image_data_format(data_format)
    torch.manual_seed(0)
    net = TorchLeNet5().eval()
    x = np.random.default_rng(0).normal(size=(2, 1, 32, 32)).astype("float32")
    with without_weights():
        model = kcnn.lenet5(input_shape=(32, 32, 1) if data_format == "channels_last"
                            else (1, 32, 32), classifier_activation=None)
        load_state_dict(model, net.state_dict())
        got = forward(model, x)
        state = to_state_dict(model)
    assert_close(got, torch_outputs(net, x))
    assert list(state) == list(net.state_dict())
    for key, tensor in net.state_dict().items():
        np.testing.assert_array_equal(state[key], tensor.numpy(), err_msg=key)


@ON_TORCH_ONLY
def test_grayscale_model_exports_its_own_first_convolution(tmp_path):
    """The colour sum of loading has no inverse: a one-channel ResNet exports a
    one-channel conv1, with a warning, and torchvision's ResNet with that conv1
    loads it strictly and gives the same outputs."""
    model = kcnn.resnet18(classes=CLASSES, input_shape=(32, 32, 1), classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape
            layer.set_weights([0.5 + rng.random(n), 0.1 * rng.normal(size=n),
                               0.1 * rng.normal(size=n), 0.5 + rng.random(n)])
    with pytest.warns(UserWarning, match=r"conv1.weight \(64, 1, 7, 7\).*one-channel"):
        path = kcnn.export(model, tmp_path / "gray.pth", format="torchvision")
    net = torchvision.models.resnet18(num_classes=CLASSES)
    net.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    net.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert_close(torch_outputs(net, X[:, :1]), forward(model, X[:, :1]))


def lenet5():
    """A LeNet-5 for refusals (refused before its weights are read): no values, no
    initialisation (seconds on JAX)."""
    with without_weights():
        return kcnn.lenet5()


@pytest.mark.parametrize("build, why", [
    pytest.param(lenet5, r"no torchvision builder is named 'lenet5'", id="lenet5"),
    pytest.param(lambda: kcnn.alexnet(variant="paper", include_top=False,
                                      input_shape=(67, 67, 3)),
                 r"'alexnet'.*(features\.0\.weight|GroupedConv2D)", id="alexnet_paper",
                 marks=ON_TORCH_ONLY),
    pytest.param(lambda: kcnn.resnet18(include_top=False, input_shape=(32, 32, 3)),
                 r"missing fc\.weight, fc\.bias", id="resnet18_without_top",
                 marks=ON_TORCH_ONLY),
])
def test_a_model_without_a_torchvision_twin_is_refused(tmp_path, build, why):
    with pytest.raises(ValueError, match=why) as refused:
        kcnn.export(build(), tmp_path / "model.pth", format="torchvision")
    assert "resnet18" in str(refused.value) and "efficientnet_b0" in str(refused.value)
    assert os.listdir(tmp_path) == []  # nothing left behind


def test_path_must_end_in_pth_or_pt(tmp_path):
    with pytest.raises(ValueError, match=r"'\.pth' or '\.pt'"):
        kcnn.export(lenet5(), tmp_path / "model.bin", format="torchvision")


def test_a_state_dict_does_not_open_as_a_runnable_model(tmp_path):
    with pytest.raises(ValueError, match=r"weights only.*load_state_dict.*weights=path"):
        torchvision_export.open(os.fspath(tmp_path / "resnet18.pth"))


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="torch is the backend itself here")
def test_missing_torch_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"kcnn\[torch\]"):
        kcnn.export(lenet5(), tmp_path / "model.pth", format="torchvision")
