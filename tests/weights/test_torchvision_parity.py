"""kcnn's builders are torchvision's networks: same weights, same logits.

A torchvision model with seeded random weights and non-trivial batch-norm
statistics is saved as a `.pth` state dict, loaded into the kcnn builder with
`weights=path`, and both run the same batch in inference mode: every one of the
28 builders torchvision has ImageNet weights for, at 64x64 with the release
head (1000 classes), on every backend: channels_last for all 28, and
channels_first for one builder of each block design (`CHANNELS_FIRST`), since
the data format changes where a design concatenates, flattens and normalises,
not which weights go where.

What keeps that cheap: one torchvision model per builder, shared by both data
formats (a module-scoped fixture); and Keras models built inside
`kcnn.inspect.without_weights()`, where the builder's `set_weights` puts the
loaded tensors into the stateless scope that the forward pass then reads, so no
variable is allocated or randomly initialised first. A fresh initialisation is
what dominates on JAX (an initializer compiled per weight shape: 15-80 s for
VGG-19 or EfficientNet-B7 on a 2-core machine), and it would be overwritten
anyway. `test_feature_maps_without_top` allocates its models as a user's are,
so that the tensors reaching real variables is checked too.
"""

import os
import re

import keras
import numpy as np
import pytest

import kcnn
from kcnn.inspect import without_weights
from kcnn.weights import catalog

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

BUILDERS = sorted({row["model_name"] for row in catalog.ROWS})
# torchvision builds GoogLeNet's auxiliary heads, and leaves its own init out
# (with a warning), unless told otherwise.
TORCHVISION_ARGUMENTS = {"googlenet": {"aux_logits": False, "init_weights": True}}
# The smallest input that still leaves the last feature map 2x2 for every
# family (AlexNet's 1x1): the pooling heads average or spread several values.
SIZE = (64, 64)
# One builder per block design: AlexNet, VGG without and with batch norm,
# ResNet's basic and bottleneck blocks, DenseNet, GoogLeNet, MobileNetV2,
# EfficientNet.
CHANNELS_FIRST = ("alexnet", "vgg11", "vgg11_bn", "resnet18", "resnet50", "densenet121",
                  "googlenet", "mobilenet_v2", "efficientnet_b0")
X = np.random.default_rng(0).normal(size=(2, 3, *SIZE)).astype("float32")


def torchvision_model(name, seed=0, **kwargs):
    """torchvision's `name` in eval mode, with weights drawn after `torch.manual_seed(seed)`
    and random batch-norm statistics and affine terms (positive variances, non-zero
    means) from a generator seeded `seed + 1`."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
    return model.eval()


def torch_logits(model, x_nchw):
    with torch.no_grad():
        out = model(torch.from_numpy(x_nchw))
    return out.numpy()


def save(model, directory, name):
    path = os.fspath(directory / f"{name}.pth")
    torch.save(model.state_dict(), path)
    return path


def to_keras_layout(x_nchw):
    if keras.config.image_data_format() == "channels_last":
        return x_nchw.transpose(0, 2, 3, 1)
    return x_nchw


def input_shape(size):
    if keras.config.image_data_format() == "channels_last":
        return (*size, 3)
    return (3, *size)


def forward(model, x):
    # On JAX, `predict_on_batch` compiles the model as one program; an eager
    # call compiles every operation separately, several times slower for the
    # deep ones (DenseNet-161: 25 s against 80 s).
    if keras.backend.backend() == "jax":
        return model.predict_on_batch(x)
    return keras.ops.convert_to_numpy(model(x, training=False))


def kcnn_logits(name, path, x_nchw, **kwargs):
    """The kcnn builder's logits for `x_nchw` with the weights of the `.pth` at `path`.

    Built and run in `without_weights()`: the variables never hold values, the
    loaded tensors live in the scope.
    """
    with without_weights():
        model = kcnn.create_model(name, weights=path, input_shape=input_shape(x_nchw.shape[2:]),
                                  classifier_activation=None, **kwargs)
        logits = forward(model, to_keras_layout(x_nchw))
    assert all(v._value is None for v in model.weights)  # nothing was allocated
    return logits


def assert_same_logits(got, expected):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


def check_parity(tmp_path, name, tv_kwargs, size, **kcnn_kwargs):
    reference = torchvision_model(name, **tv_kwargs)
    path = save(reference, tmp_path, name)
    x = np.random.default_rng(0).normal(size=(2, 3, *size)).astype("float32")
    assert_same_logits(kcnn_logits(name, path, x, **kcnn_kwargs), torch_logits(reference, x))


@pytest.fixture(scope="module")
def reference(request, tmp_path_factory):
    """(builder, .pth path, torchvision's logits on X), shared by both data formats."""
    name = request.param
    model = torchvision_model(name, **TORCHVISION_ARGUMENTS.get(name, {}))
    path = save(model, tmp_path_factory.mktemp(name), name)
    logits = torch_logits(model, X)
    del model
    yield name, path, logits
    os.remove(path)  # up to 0.5 GB (VGG)


@pytest.mark.parametrize("reference, data_format", [
    *((name, "channels_last") for name in BUILDERS),
    *((name, "channels_first") for name in CHANNELS_FIRST)], indirect=["reference"])
def test_logits_equal_torchvision(reference, data_format):
    name, path, expected = reference
    keras.config.set_image_data_format(data_format)
    assert_same_logits(kcnn_logits(name, path, X), expected)


def test_second_input_size_uses_adaptive_pooling(tmp_path):
    check_parity(tmp_path, "alexnet", {}, (97, 113))


def test_googlenet_transform_input_at_a_second_input_size(tmp_path):
    """The input transform of the Caffe-era weights, and odd sizes through
    GoogLeNet's ceil-mode pooling to its global pooling head."""
    check_parity(tmp_path, "googlenet",
                 {"aux_logits": False, "init_weights": True, "transform_input": True},
                 (97, 113), transform_input=True)


@pytest.mark.parametrize("name, features", [
    ("resnet18", lambda m, x: torch.nn.Sequential(*list(m.children())[:-2])(x)),
    ("vgg11_bn", lambda m, x: m.features(x)),
])
def test_feature_maps_without_top(tmp_path, name, features):
    reference = torchvision_model(name)
    path = save(reference, tmp_path, name)
    with torch.no_grad():
        expected = features(reference, torch.from_numpy(X)).numpy()
    # Allocated, as a user's model is: the tensors reach real variables.
    model = kcnn.create_model(name, include_top=False, weights=path,
                              input_shape=input_shape(SIZE))
    got = forward(model, to_keras_layout(X))
    np.testing.assert_allclose(got, to_keras_layout(expected), rtol=0,
                               atol=1e-4 * np.abs(expected).max())


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="backend-independent: the key names of a file are mapped in "
                           "Python, and the logits of both models on every backend are "
                           "test_logits_equal_torchvision's; runs once, on torch")
def test_torchvision_release_files_load(tmp_path):
    """torchvision's own files: DenseNet's old key names, GoogLeNet's aux heads."""
    reference = torchvision_model("densenet121")
    old_names = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
                 for k, v in reference.state_dict().items()}
    assert any(".norm.1." in k for k in old_names)
    path = os.fspath(tmp_path / "densenet121.pth")
    torch.save(old_names, path)
    assert_same_logits(kcnn_logits("densenet121", path, X),
                       torch_logits(reference, X))

    with_aux = torchvision_model("googlenet", aux_logits=True, init_weights=True)
    path = save(with_aux, tmp_path, "googlenet")
    assert any(k.startswith("aux1.") for k in with_aux.state_dict())
    assert_same_logits(kcnn_logits("googlenet", path, X),
                       torch_logits(with_aux, X))
