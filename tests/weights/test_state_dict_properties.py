"""The state-dict name mapping of kcnn.weights.torch_state_dict, for every builder
kcnn has torchvision weights for: each key of torchvision's `state_dict()` goes to
one kcnn layer and variable of the matching shape, every kcnn weight gets exactly
one key, and DenseNet's old key names (torchvision's released files) map as the
current ones.

Name logic only: both models are built on torch's "meta" device (shapes, no
memory, no initialisation; nothing is downloaded), and the names are the same on
every backend, so this runs once, on torch. The logits themselves are
test_torchvision_parity.py's subject.
"""

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import functools
import re

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcnn.weights import catalog
from kcnn.weights import torch_state_dict as mapping

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="backend-independent: layer and variable names are the same on every "
           "backend, and meta-device models need torch; runs once, on torch")

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

BUILDERS = sorted({row["model_name"] for row in catalog.ROWS})
DENSENETS = [name for name in BUILDERS if name.startswith("densenet")]
# torchvision builds GoogLeNet's auxiliary classifiers by default: kcnn builds
# them too, so that their keys are checked as well.
KCNN_ARGUMENTS = {"googlenet": {"aux_logits": True}}
TORCHVISION_ARGUMENTS = {"googlenet": {"aux_logits": True, "init_weights": False}}

# The Keras variable each torch parameter is loaded into, by layer type (the
# first of these types that a layer is an instance of).
VARIABLES = {
    keras.layers.BatchNormalization: {"weight": "gamma", "bias": "beta",
                                      "running_mean": "moving_mean",
                                      "running_var": "moving_variance"},
    keras.layers.DepthwiseConv2D: {"weight": "kernel", "bias": "bias"},
    keras.layers.Conv2D: {"weight": "kernel", "bias": "bias"},
    keras.layers.Dense: {"weight": "kernel", "bias": "bias"},
}


@functools.cache
def torchvision_shapes(name):
    """{key: shape} of torchvision's `state_dict()` for `name`, built once per module."""
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(
            weights=None, **TORCHVISION_ARGUMENTS.get(name, {}))
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@functools.cache
def kcnn_layers(name):
    """{layer name: layer} of kcnn's weighted layers for `name`, as the loader walks them."""
    with keras.device("meta"):
        model = kcnn.create_model(name, **KCNN_ARGUMENTS.get(name, {}))
    return {layer.name: layer for layer in mapping._weighted_layers(model)}


def variable_for(name, key):
    """(layer, torch parameter, Keras variable) that `key` loads into, as the loader pairs them."""
    layer_name, param = mapping._layer_and_param(mapping._current_name(key))
    layers = kcnn_layers(name)
    assert layer_name in layers, f"{key} names no kcnn layer of {name} ({layer_name!r})"
    layer = layers[layer_name]
    params = mapping._torch_params(layer)
    assert param in params, f"{key}: layer {layer_name!r} has no torch parameter {param!r}"
    return layer, param, layer.weights[params.index(param)]


def keras_shape(layer, torch_shape):
    """The Keras variable shape a torch weight of `torch_shape` takes in `layer`."""
    if len(torch_shape) == 4 and isinstance(layer, keras.layers.DepthwiseConv2D):
        channels_times_multiplier, one, kh, kw = torch_shape
        channels = layer.weights[0].shape[2]
        assert one == 1 and channels_times_multiplier % channels == 0
        return kh, kw, channels, channels_times_multiplier // channels
    if len(torch_shape) == 4:
        out, into, kh, kw = torch_shape
        return kh, kw, into, out
    if len(torch_shape) == 2:
        return torch_shape[::-1]
    return torch_shape


@pytest.mark.parametrize("name", BUILDERS)
def test_each_torchvision_key_fills_one_kcnn_variable_and_each_variable_is_filled_once(name):
    filled = {}
    for key, shape in torchvision_shapes(name).items():
        if key.endswith(".num_batches_tracked"):
            assert key.rsplit(".", 1)[-1] in mapping._UNUSED
            continue
        assert mapping._current_name(key) == key, "a current key name was rewritten"
        layer, param, variable = variable_for(name, key)
        kind = next(t for t in VARIABLES if isinstance(layer, t))
        assert variable.name == VARIABLES[kind][param], key
        assert tuple(variable.shape) == keras_shape(layer, shape), key
        assert id(variable) not in filled, f"{key} and {filled.get(id(variable))} share " \
                                           f"{layer.name}.{variable.name}"
        filled[id(variable)] = key
    weights = [v for layer in kcnn_layers(name).values() for v in layer.weights]
    unfilled = [f"{v.path}" for v in weights if id(v) not in filled]
    assert not unfilled, f"kcnn weights no torchvision key fills: {unfilled[:5]}"


def old_name(key):
    """torchvision's released DenseNet files: `denselayer1.norm1.weight` was
    `denselayer1.norm.1.weight` (the same for conv)."""
    return re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key)


@functools.cache
def renamed_keys(name):
    return sorted(key for key in torchvision_shapes(name)
                  if old_name(key) != key and not key.endswith("num_batches_tracked"))


@settings(max_examples=40)
@given(data=st.data(), name=st.sampled_from(DENSENETS))
def test_densenet_old_key_names_fill_the_same_variables(data, name):
    key = data.draw(st.sampled_from(renamed_keys(name)), label="key")
    old = old_name(key)
    assert mapping._current_name(old) == key
    assert variable_for(name, old)[2] is variable_for(name, key)[2]


parts = st.tuples(
    st.sampled_from(["features.", "", "module.features.", "backbone.body."]),
    st.integers(1, 12), st.integers(1, 99), st.sampled_from(["norm", "conv"]),
    st.sampled_from(["1", "2"]),
    st.sampled_from(["weight", "bias", "running_mean", "running_var"]))


@settings(max_examples=60)
@given(parts=parts)
def test_old_dense_layer_names_are_rewritten_and_current_ones_kept(parts):
    prefix, block, layer, module, number, param = parts
    current = f"{prefix}denseblock{block}.denselayer{layer}.{module}{number}.{param}"
    assert mapping._current_name(old_name(current)) == current
    assert mapping._current_name(current) == current
    # only a dense layer's norm.1 / conv.2 style names are torchvision's old ones
    for other in (current.replace("denselayer", "transition"),
                  f"{prefix}denseblock{block}.denselayer{layer}.{module}.{number}."
                  "num_batches_tracked",
                  f"{prefix}layer{block}.{layer}.{module}.{number}.{param}"):
        assert mapping._current_name(other) == other
