"""PyTorch state dicts (torchvision's layout) to and from kcnn models, by name.

kcnn's layer names are torchvision's module paths with "_" for "."
(`layer1.0.conv1.weight` -> layer `layer1_0_conv1`, variable `kernel`), so the
conversion is a mapping of names plus a transposition per layer type, kept in
one table (`_LAYOUTS`) that both directions read:

- `Conv2D`: torch (out, in/groups, kh, kw) <-> Keras (kh, kw, in/groups, out).
- `DepthwiseConv2D`: torch (C*m, 1, kh, kw) <-> Keras (kh, kw, C, m).
- `Dense`: torch (out, in) <-> Keras (in, out). A dense layer fed by a `Flatten`
  of a feature map also has its input rows reordered: torch flattens
  (C, H, W), Keras (H, W, C) in both data formats.
- `BatchNormalization`: weight, bias, running_mean, running_var <-> gamma, beta,
  moving_mean, moving_variance; torch's `num_batches_tracked` buffer is not
  read, and is written as an int64 zero (torch's value for a module that only
  ever ran in eval mode), so that `load_state_dict(strict=True)` finds it.

`load_state_dict` / `load_pth` read a state dict into a model. Every tensor is
checked before anything is assigned: a missing, unexpected or mis-shaped tensor
is a `ValueError` that names it, and the model is left as it was. A model with
one input channel loading three-channel weights (grayscale input) gets its
first convolution's kernel summed over the colour channels, so that a grey
image x gives what the RGB image (x, x, x) would.

`to_state_dict` is the reverse: the model's weights as torchvision's tensors.
The colour sum has no inverse, so a one-channel model gives a one-channel first
convolution (the state dict of the model as it is).
"""

import os
import re

import keras
import numpy as np

from kcnn import _keras_internal

# The one table of both directions, by layer type (the first type a layer is
# an instance of): torch's names of `layer.weights`, in that order (a layer
# without a bias has the first only); the Keras kernel's axes as a permutation
# of torch's weight axes (`transpose` order; the way back is its inverse), a
# depthwise kernel's torch weight seen as (C, m, kh, kw); and torch's buffers
# that have no Keras variable.
_LAYOUTS = (
    (keras.layers.BatchNormalization, ("weight", "bias", "running_mean", "running_var"),
     None, ("num_batches_tracked",)),
    (keras.layers.DepthwiseConv2D, ("weight", "bias"), (2, 3, 0, 1), ()),
    (keras.layers.Conv2D, ("weight", "bias"), (2, 3, 1, 0), ()),
    (keras.layers.Dense, ("weight", "bias"), (1, 0), ()),
)
_UNUSED = tuple(b for *_, buffers in _LAYOUTS for b in buffers)
# Modules torchvision's files hold that a model may leave out: GoogLeNet's
# auxiliary classifiers (torchvision drops them too when aux_logits=False).
_OPTIONAL_MODULES = ("aux1", "aux2")
# torchvision's released DenseNet files use the old names `norm.1`, `conv.2`
# for `norm1`, `conv2` (torchvision renames them the same way when loading).
_DENSENET_OLD_NAME = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def read_pth(path):
    """A `.pth` state dict as {name: float numpy array}, never running pickled code."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"Reading the PyTorch file {path!r} needs torch: install kcnn's torch "
            f"extra (pip install 'kcnn[torch]'), or convert the file once to "
            f"'.weights.h5' on a machine that has torch."
        ) from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"weights={path!r} is not a readable PyTorch state dict: {e}") from e
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and hasattr(v, "detach") for k, v in state.items()):
        raise ValueError(
            f"weights={path!r} does not hold a state dict (a mapping of names to "
            f"tensors, as torch.save(model.state_dict(), path) writes)."
        )
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def load_state_dict(model, state_dict, *, source="state dict", skip_unmatched=False):
    """Assign a torchvision-style state dict (numpy arrays or tensors) to `model`.

    All tensors are converted and checked first; only then is anything set.
    `skip_unmatched=True` ignores tensors of modules the model does not have
    (a classifier when the model was built with `include_top=False`).
    """
    if not hasattr(state_dict, "items"):
        raise ValueError(f"state_dict must be a mapping of torchvision names to tensors "
                         f"(e.g. torch.load(path)); received state_dict={state_dict!r}.")
    state = {_current_name(k): _to_numpy(v) for k, v in state_dict.items()
             if k.rsplit(".", 1)[-1] not in _UNUSED}
    layer_names = {layer.name for layer in _weighted_layers(model)}
    for prefix in _OPTIONAL_MODULES:
        if not any(name.startswith(prefix + "_") for name in layer_names):
            state = {k: v for k, v in state.items() if not k.startswith(prefix + ".")}
    by_layer = {}
    for key, value in state.items():
        layer_name, param = _layer_and_param(key)
        by_layer.setdefault(layer_name, {})[param] = (key, value)

    assignments = []
    problems = []
    for layer in _weighted_layers(model):
        tensors = by_layer.pop(layer.name, None)
        if tensors is None:
            problems.append(f"no tensors for layer {layer.name!r} "
                            f"(expected '{_torch_module(layer)}.*')")
            continue
        try:
            assignments.append((layer, _convert(layer, tensors)))
        except ValueError as e:
            problems.append(str(e))
    for module, tensors in ({} if skip_unmatched else by_layer).items():
        names = ", ".join(sorted(key for key, _ in tensors.values()))
        problems.append(f"unexpected tensors with no matching layer: {names}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(
            f"The {source} does not match {model.name}; nothing was loaded:\n  {shown}{more}"
        )
    for layer, values in assignments:
        layer.set_weights(values)


def load_pth(model, path, *, skip_unmatched=False):
    """Load a torchvision `.pth` state-dict file into `model` (see `load_state_dict`)."""
    path = os.fspath(path)
    load_state_dict(model, read_pth(path), source=f"file {path!r}",
                    skip_unmatched=skip_unmatched)


def to_state_dict(model):
    """`model`'s weights as a torchvision state dict: {torch key: numpy array}.

    The reverse of `load_state_dict` (the same table): float32 tensors in
    torch's layouts, named by torch's module paths, in the model's layer order,
    with each batch norm's `num_batches_tracked` as an int64 zero so that
    torch's `load_state_dict(strict=True)` finds every key it expects. A
    one-channel model's first convolution stays one-channel: the colour sum of
    loading has no inverse. Which torchvision builder takes the result is the
    caller's question (`kcnn.exporting.torchvision` checks it).
    """
    return {key: value for layer in _weighted_layers(model)
            for key, value in _torch_tensors(layer, layer.get_weights())}


def _torch_tensors(layer, values):
    """[(torch key, array)] of `layer` whose Keras weights are `values`."""
    params, axes, buffers = _layout(layer)
    module = _torch_module(layer)
    tensors = []
    for param, value in zip(params, values):
        if param == "weight" and axes is not None:
            value = _to_torch_layout(layer, value, axes)
        tensors.append((f"{module}.{param}", np.ascontiguousarray(value, np.float32)))
    return tensors + [(f"{module}.{buffer}", np.zeros((), np.int64)) for buffer in buffers]


def _current_name(key):
    match = _DENSENET_OLD_NAME.match(key)
    return match.group(1) + match.group(2) if match else key


def _layer_and_param(key):
    """`layer1.0.conv1.weight` -> ("layer1_0_conv1", "weight"): the kcnn layer
    name and the torch parameter name of a (current-style) state-dict key."""
    module, _, param = key.rpartition(".")
    return module.replace(".", "_"), param


def _layout(layer):
    """(torch parameter names, kernel axes, buffers) of `layer`, from `_LAYOUTS`."""
    for kind, params, axes, buffers in _LAYOUTS:
        if isinstance(layer, kind):
            return params[:len(layer.weights)], axes, buffers
    raise ValueError(
        f"layer {layer.name!r} of type {type(layer).__name__} has weights "
        f"that kcnn does not know how to convert"
    )


def _torch_params(layer):
    """torch's parameter names of `layer`'s weights, in the order of `layer.weights`."""
    return _layout(layer)[0]


def _torch_module(layer):
    """`layer1_0_conv1` -> `layer1.0.conv1`: the reverse of `_layer_and_param`."""
    return layer.name.replace("_", ".")


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _weighted_layers(model):
    for layer in _keras_internal.flatten_layers(model, include_self=False):
        if layer.weights and not _keras_internal.sublayers(layer):
            yield layer


def _convert(layer, tensors):
    """The Keras weight list of `layer` from its torch tensors {param: (key, array)}."""
    params, axes, _ = _layout(layer)
    torch_name = _torch_module(layer)
    missing = [p for p in params if p not in tensors]
    if missing:
        raise ValueError(f"missing tensors for layer {layer.name!r}: "
                         f"{', '.join(f'{torch_name}.{p}' for p in missing)}")
    unexpected = sorted(tensors[p][0] for p in set(tensors) - set(params))
    if unexpected:
        raise ValueError(f"unexpected tensors for layer {layer.name!r}: "
                         f"{', '.join(unexpected)}")
    values = []
    for param, variable in zip(params, layer.weights):
        key, value = tensors[param]
        shape = tuple(variable.shape)
        if param == "weight" and axes is not None:
            value = _to_keras_layout(layer, value, shape, axes)
        if value is None or tuple(value.shape) != shape:
            raise ValueError(
                f"{key} has shape {tuple(tensors[param][1].shape)}, which does not "
                f"fit {layer.name!r}.{variable.name} of shape {shape}"
            )
        values.append(value.astype(np.float32))
    return values


def _to_keras_layout(layer, w, shape, axes):
    """A torch weight in the layout of the Keras variable of `shape` (None: no fit)."""
    if w.ndim != len(axes):
        return None
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = shape
        if w.size != np.prod(shape):
            return None
        return w.reshape(channels, multiplier, kh, kw).transpose(axes)
    if isinstance(layer, keras.layers.Conv2D):
        w = w.transpose(axes)
        if shape[2] == 1 and w.shape[2] == 3 and shape[:2] + shape[3:] == w.shape[:2] + w.shape[3:]:
            w = w.sum(axis=2, keepdims=True)  # grayscale input, RGB weights
        return w
    return _reorder_flattened(layer, w, to_torch=False).transpose(axes)


def _to_torch_layout(layer, kernel, axes):
    """A Keras kernel in torch's layout: `_to_keras_layout` backwards."""
    w = kernel.transpose(np.argsort(axes))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return w.reshape(-1, 1, *w.shape[2:])  # (C, m, kh, kw) -> (C*m, 1, kh, kw)
    if isinstance(layer, keras.layers.Dense):
        w = _reorder_flattened(layer, w, to_torch=True)
    return w


def _reorder_flattened(dense, w, *, to_torch):
    """A dense weight (out, in) with its input columns in torch's flatten order
    (C, H, W) from Keras's (H, W, C), or back: for a dense layer that reads a
    Flatten of a feature map; any other weight comes back as it is.

    A reshape and a transpose, not an index array: 10x faster on VGG's
    (4096, 25088) weight here (0.8-5 s against 10-15 s).
    """
    hwc = _flattened_map_shape(dense)
    if hwc is None or w.shape[1] != np.prod(hwc):
        return w
    h, w_, c = hwc
    if to_torch:
        return w.reshape(-1, h, w_, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
    return w.reshape(-1, c, h, w_).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _flattened_map_shape(dense):
    """(H, W, C) when `dense` reads a Flatten of a feature map, else None.

    Walks back through layers that keep the vector as it is (dropout,
    activations) to find the Flatten.
    """
    calls = _keras_internal.inbound_nodes(dense)
    node = calls[0] if calls else None
    while node is not None:
        op = _keras_internal.producer(node.input_tensors[0])
        if isinstance(op, keras.layers.Flatten):
            shape = tuple(_keras_internal.inbound_nodes(op)[0].input_tensors[0].shape[1:])
            if len(shape) != 3:
                return None
            # Keras's Flatten moves channels last first in both data formats.
            return shape if op.data_format == "channels_last" else shape[1:] + shape[:1]
        if isinstance(op, (keras.layers.Dropout, keras.layers.Activation,
                           keras.layers.ReLU)):
            node = _keras_internal.inbound_nodes(op)[0]
            continue
        return None
    return None
