"""Converting state dicts: by name, checked, all or nothing, with clear errors."""

import os
import sys

import keras
import numpy as np
import pytest

import kcnn
from kcnn.weights import load_state_dict

torch = pytest.importorskip("torch")


def lenet_state_dict(model):
    """A torch-layout state dict for kcnn's LeNet-5 (named as its layers)."""
    state = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k, b = (keras.ops.convert_to_numpy(w) for w in layer.weights)
            state[f"{layer.name}.weight"] = k.transpose(3, 2, 0, 1)
            state[f"{layer.name}.bias"] = b
        elif isinstance(layer, keras.layers.Dense):
            k, b = (keras.ops.convert_to_numpy(w) for w in layer.weights)
            state[f"{layer.name}.weight"] = k.T
            state[f"{layer.name}.bias"] = b
    # torch flattens the 16x5x5 map channel-first; Keras flattens it channel-last.
    w = state["fc1.weight"].reshape(120, 5, 5, 16).transpose(0, 3, 1, 2)
    state["fc1.weight"] = w.reshape(120, -1)
    return state


def weights_of(model):
    return [keras.ops.convert_to_numpy(w).copy() for w in model.weights]


def test_round_trip_through_torch_layout_keeps_the_outputs():
    source = kcnn.lenet5(input_shape=(32, 32, 1))
    state = lenet_state_dict(source)
    target = kcnn.lenet5(input_shape=(32, 32, 1))
    load_state_dict(target, state)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target(x)),
                               keras.ops.convert_to_numpy(source(x)), atol=1e-6)


def test_pth_file_loads_through_the_builder(tmp_path):
    source = kcnn.lenet5(input_shape=(32, 32, 1))
    state = {k: torch.from_numpy(np.ascontiguousarray(v))
             for k, v in lenet_state_dict(source).items()}
    path = os.fspath(tmp_path / "lenet.pth")
    torch.save(state, path)
    model = kcnn.lenet5(input_shape=(32, 32, 1), weights=path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel),
                                  keras.ops.convert_to_numpy(source.get_layer("conv1").kernel))


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("conv2.bias"), r"missing tensors for layer 'conv2': conv2.bias"),
    (lambda s: s.update({"conv9.weight": np.zeros(3, "float32")}),
     r"unexpected tensors with no matching layer: conv9.weight"),
    (lambda s: s.update({"conv1.weight": np.zeros((6, 1, 3, 3), "float32")}),
     r"conv1.weight has shape \(6, 1, 3, 3\), which does not fit 'conv1'.kernel"),
])
def test_a_bad_state_dict_is_refused_whole(edit, message):
    model = kcnn.lenet5()
    state = lenet_state_dict(kcnn.lenet5())
    edit(state)
    before = weights_of(model)
    with pytest.raises(ValueError, match=message):
        load_state_dict(model, state)
    for a, b in zip(before, weights_of(model)):
        np.testing.assert_array_equal(a, b)


def test_grayscale_model_sums_the_first_kernel_over_colours():
    rgb = kcnn.lenet5(input_shape=(28, 28, 3))
    state = lenet_state_dict(rgb)
    gray = kcnn.lenet5(input_shape=(28, 28, 1))
    load_state_dict(gray, state)
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gray(x)),
                               keras.ops.convert_to_numpy(rgb(np.repeat(x, 3, axis=-1))),
                               atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="torch is the backend itself here")
def test_missing_torch_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "model.pth"
    path.write_bytes(b"not used")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"kcnn\[torch\]"):
        kcnn.lenet5(weights=os.fspath(path))


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    path = os.fspath(tmp_path / "model.pth")
    torch.save({"epoch": 3}, path)
    with pytest.raises(ValueError, match=r"does not hold a state dict"):
        kcnn.lenet5(weights=path)
