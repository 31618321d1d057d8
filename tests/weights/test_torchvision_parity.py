"""kcnn's builders are torchvision's networks: same weights, same logits.

A torchvision model with seeded random weights and non-trivial batch-norm
statistics is saved as a `.pth` state dict, loaded into the kcnn builder with
`weights=path`, and both run the same batch in inference mode.
"""

import os
import re

import keras
import numpy as np
import pytest

import kcnn

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

# (kcnn builder, torchvision kwargs, input height and width); one model per
# family on every backend, the rest on TensorFlow (marked large).
CASES = [
    ("alexnet", {}, (64, 64)),
    ("vgg11_bn", {}, (32, 32)),
    ("resnet18", {}, (64, 64)),
    ("googlenet", {"aux_logits": False, "init_weights": True}, (64, 64)),
    ("densenet121", {}, (64, 64)),
    ("mobilenet_v2", {}, (64, 64)),
    ("efficientnet_b0", {}, (64, 64)),
]
LARGE_CASES = [
    ("vgg11", {}, (32, 32)), ("vgg13", {}, (32, 32)), ("vgg16", {}, (32, 32)),
    ("vgg19", {}, (32, 32)), ("vgg13_bn", {}, (32, 32)), ("vgg16_bn", {}, (32, 32)),
    ("vgg19_bn", {}, (32, 32)),
    ("resnet34", {}, (64, 64)), ("resnet50", {}, (64, 64)),
    ("resnet101", {}, (64, 64)), ("resnet152", {}, (64, 64)),
    ("densenet169", {}, (64, 64)), ("densenet201", {}, (64, 64)),
    ("efficientnet_b1", {}, (64, 64)), ("efficientnet_b2", {}, (64, 64)),
    ("efficientnet_b3", {}, (64, 64)), ("efficientnet_b4", {}, (64, 64)),
    ("efficientnet_b5", {}, (64, 64)), ("efficientnet_b6", {}, (64, 64)),
    ("efficientnet_b7", {}, (64, 64)),
]


def torchvision_model(name, **kwargs):
    """A torchvision model with seeded random weights and batch-norm statistics."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    generator = torch.Generator().manual_seed(1)
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


def to_keras_layout(x_nchw):
    if keras.config.image_data_format() == "channels_last":
        return x_nchw.transpose(0, 2, 3, 1)
    return x_nchw


def assert_same_logits(kcnn_model, expected, x_nchw):
    got = keras.ops.convert_to_numpy(kcnn_model(to_keras_layout(x_nchw), training=False))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


def check_parity(tmp_path, name, tv_kwargs, size, **kcnn_kwargs):
    reference = torchvision_model(name, **tv_kwargs)
    path = os.fspath(tmp_path / f"{name}.pth")
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(0).normal(size=(2, 3, *size)).astype("float32")
    channels = (3,)
    shape = (*size, 3) if keras.config.image_data_format() == "channels_last" else channels + size
    model = kcnn.create_model(name, weights=path, input_shape=shape,
                              classifier_activation=None, **kcnn_kwargs)
    assert_same_logits(model, torch_logits(reference, x), x)


@pytest.mark.parametrize("name, tv_kwargs, size", CASES, ids=[c[0] for c in CASES])
def test_logits_equal_torchvision(tmp_path, name, tv_kwargs, size):
    check_parity(tmp_path, name, tv_kwargs, size)


@pytest.mark.large
@pytest.mark.parametrize("name, tv_kwargs, size", LARGE_CASES, ids=[c[0] for c in LARGE_CASES])
def test_logits_equal_torchvision_large(tmp_path, name, tv_kwargs, size):
    check_parity(tmp_path, name, tv_kwargs, size)


def test_second_input_size_uses_adaptive_pooling(tmp_path):
    check_parity(tmp_path, "alexnet", {}, (97, 113))


def test_googlenet_transform_input(tmp_path):
    check_parity(tmp_path, "googlenet",
                 {"aux_logits": False, "init_weights": True, "transform_input": True},
                 (64, 64), transform_input=True)


@pytest.mark.parametrize("name", ["alexnet", "resnet18"])
def test_channels_first(tmp_path, channels_first, name):
    check_parity(tmp_path, name, {}, (64, 64))


@pytest.mark.parametrize("name, features", [
    ("resnet18", lambda m, x: torch.nn.Sequential(*list(m.children())[:-2])(x)),
    ("vgg11_bn", lambda m, x: m.features(x)),
])
def test_feature_maps_without_top(tmp_path, name, features):
    reference = torchvision_model(name)
    path = os.fspath(tmp_path / f"{name}.pth")
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype("float32")
    with torch.no_grad():
        expected = features(reference, torch.from_numpy(x)).numpy()
    model = kcnn.create_model(name, include_top=False, weights=path,
                              input_shape=(64, 64, 3))
    got = keras.ops.convert_to_numpy(model(to_keras_layout(x), training=False))
    np.testing.assert_allclose(got, to_keras_layout(expected), rtol=0,
                               atol=1e-4 * np.abs(expected).max())


@pytest.mark.large
def test_torchvision_release_files_load(tmp_path):
    """torchvision's own files: DenseNet's old key names, GoogLeNet's aux heads."""
    reference = torchvision_model("densenet121")
    old_names = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
                 for k, v in reference.state_dict().items()}
    assert any(".norm.1." in k for k in old_names)
    path = os.fspath(tmp_path / "densenet121.pth")
    torch.save(old_names, path)
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype("float32")
    model = kcnn.densenet121(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    assert_same_logits(model, torch_logits(reference, x), x)

    with_aux = torchvision_model("googlenet", aux_logits=True, init_weights=True)
    path = os.fspath(tmp_path / "googlenet.pth")
    torch.save(with_aux.state_dict(), path)
    assert any(k.startswith("aux1.") for k in with_aux.state_dict())
    model = kcnn.googlenet(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    assert_same_logits(model, torch_logits(with_aux, x), x)


@pytest.mark.large
def test_second_input_size_for_a_global_pooling_head(tmp_path):
    check_parity(tmp_path, "googlenet", {"aux_logits": False, "init_weights": True}, (97, 113))
