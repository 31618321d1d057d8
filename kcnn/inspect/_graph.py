"""Reading a functional model's graph: its nodes, layout and feature maps."""

import keras
import numpy as np

from kcnn import _keras_internal

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                 keras.layers.SeparableConv2D, keras.layers.Conv2DTranspose)


def functional(model, what="model"):
    """The functional graph of a model (a Sequential model's own, once built)."""
    if isinstance(model, keras.Sequential):
        model = _keras_internal.sequential_graph(model)
    if not _keras_internal.is_graph_model(model):
        raise ValueError(
            f"{what} must be a functional or built Sequential Keras model (its graph "
            f"is read); received {model!r}."
        )
    return model


def nodes(model):
    """The model's layer calls in graph order (inputs first), input nodes left out."""
    by_depth = _keras_internal.nodes_by_depth(functional(model))
    return [node for depth in sorted(by_depth, reverse=True)
            for node in by_depth[depth] if not node.is_input]


def data_format(model):
    """The image data format the model was built in (its layers record it)."""
    for layer in _keras_internal.flatten_layers(model, include_self=False):
        fmt = getattr(layer, "data_format", None)
        if fmt in ("channels_last", "channels_first"):
            return fmt
    return keras.config.image_data_format()


def spatial(shape, fmt):
    """(height, width) of a 4-D shape in `fmt`, or None for other ranks."""
    if len(shape) != 4:
        return None
    return tuple(shape[1:3]) if fmt == "channels_last" else tuple(shape[2:4])


def single_input(model, what):
    graph = functional(model)
    if len(graph.inputs) != 1:
        raise ValueError(
            f"{what} needs a model with one input; {model.name!r} has {len(graph.inputs)}."
        )
    return graph.inputs[0]


def check_images(images, graph_input, argument):
    """`images` as a float32 batch that fits the model's input (one example gets a batch axis)."""
    x = np.asarray(images, dtype="float32")
    example = tuple(graph_input.shape[1:])
    if x.ndim == len(example):
        x = x[None]
    fits = x.ndim == len(example) + 1 and all(
        d is None or d == n for d, n in zip(example, x.shape[1:]))
    if not fits or len(x) == 0:
        raise ValueError(
            f"{argument} must be model input of shape (N,) + {example} (or one "
            f"example of shape {example}); received an array of shape "
            f"{np.shape(images)}."
        )
    return x


def resolve_layer(model, layer, argument):
    """The output tensor of `layer`, a name or a layer of `model` (at its first call)."""
    if isinstance(layer, keras.layers.Layer):
        name = layer.name
    elif isinstance(layer, str):
        name = layer
    else:
        raise ValueError(f"{argument} must be a layer name or a Keras layer; received "
                         f"{argument}={layer!r}.")
    names = [op.name for op in functional(model).operations]
    if name not in names:
        maps = [n.operation.name for n in nodes(model)
                if spatial(n.outputs[0].shape, data_format(model))]
        shown = ", ".join(maps[-8:])
        raise ValueError(
            f"{argument}={name!r}: {model.name!r} has no layer of that name. Layers "
            f"with feature maps include (the last few): {shown}."
        )
    return model.get_layer(name).output


def depends_on(output, tensor):
    """Whether the graph computes the KerasTensor `output` from `tensor`."""
    stack, seen = [output], set()
    while stack:
        t = stack.pop()
        if t is tensor:
            return True
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.extend(_keras_internal.producing_node(t).input_tensors)
    return False


def default_feature_map(model):
    """The feature map Grad-CAM reads by default: the last convolution's output,
    followed through the layers after it that keep its spatial size (batch norm,
    activations, residual additions, concatenations), as far as each has a
    single consumer. Where the convolutions sit inside a nested model, that
    model's output counts as the convolution.
    """
    fmt = data_format(model)
    order = nodes(model)
    consumers = {}
    for node in order:
        for t in node.input_tensors:
            consumers.setdefault(id(t), []).append(node)

    def is_map(node):
        return spatial(node.outputs[0].shape, fmt) is not None

    candidates = [n for n in order if is_map(n) and (
        isinstance(n.operation, _CONVOLUTIONS) or isinstance(n.operation, keras.Model))]
    if not candidates:
        raise ValueError(
            f"{model.name!r} has no convolution with a spatial output for Grad-CAM "
            f"to read: pass layer= the name of a layer whose output is a feature map."
        )
    node = candidates[-1]
    while True:
        tensor = node.outputs[0]
        following = consumers.get(id(tensor), [])
        if len(following) != 1 or len(node.outputs) != 1:
            return tensor
        nxt = following[0]
        if (isinstance(nxt.operation, _CONVOLUTIONS + (keras.layers.Dense, keras.Model))
                or len(nxt.outputs) != 1
                or spatial(nxt.outputs[0].shape, fmt) != spatial(tensor.shape, fmt)):
            return tensor
        node = nxt
