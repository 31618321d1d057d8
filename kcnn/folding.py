"""Batch normalization folded into the convolution before it, for inference.

With its moving statistics, a BatchNormalization is an affine map per channel,
`y = (x - mean) * s + beta` with `s = gamma / sqrt(variance + epsilon)`. When
`x` is the output of a convolution (or dense layer) with no activation, and
nothing but the batch norm reads it, the two are one convolution with kernel
`kernel * s` (per output channel) and bias `(bias - mean) * s + beta`: one pass
over the activations fewer, the same outputs to float32 rounding.

This module is kcnn's one home for that rewrite. `kcnn.predict`,
`kcnn.evaluate` and the SavedModel and ONNX exports run the folded model;
`.keras` files and torchvision state dicts keep the batch-norm tensors (training
needs them). Keras and torchvision fold nothing in eager inference (torch folds
only in `torch.fx`/`torch.ao` graph rewrites, TensorFlow's grappler only inside
some graph optimisations), which is why kcnn does it itself. Speeds, folded
against unfolded: `benchmarks/README.md`.

What folds: every `BatchNormalization` (Keras's, kcnn's, any subclass), called
once, whose only input is the output of a `Conv1D`/`Conv2D`/`Conv3D` (kcnn's
`GroupedConv2D` included), `DepthwiseConv1D`/`DepthwiseConv2D` or `Dense`
(or subclasses) that is called once, has a linear activation, is neither
quantized nor LoRA-enabled, and whose output feeds nothing else, with the batch
norm on that layer's channel axis. Anything else stays: a pre-activation batch
norm (DenseNet), one after a pool or an add, one after a convolution with an
activation. Functional models nested in the model fold too; a `Sequential`
nested in a functional model is copied unfolded (Keras's cloning cannot skip
a layer of a Sequential).
"""

__all__ = ["fold_batch_norm"]

import contextlib
import weakref

import keras
import numpy as np

from kcnn import _keras_internal as internal
from kcnn.models._common import Model

# Layers whose kernel's last axis is the output channel (Conv1D..Conv3D,
# GroupedConv2D; Dense), and the depthwise ones (kernel (..., C, multiplier),
# output channel c * multiplier + j). Transposed convolutions, whose kernel is
# (..., filters, in), are not among them.
_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
          keras.layers.Dense)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)


def fold_batch_norm(model):
    """A copy of `model` with each batch norm folded into the layer before it.

    Args:
        model: a functional Keras model (any kcnn builder), or a built
            `Sequential` (the result is then functional). A subclassed model
            has no graph to rewrite and is returned as it is.

    Returns:
        A new model with the same inputs, outputs (within float32 rounding in
        inference), layer names and, for a kcnn model, the same class and
        `metadata`, less the folded batch norms; the folded layers have a bias.
        Its weights are copies, computed in float64 and cast to the kernel's
        dtype: training it or `model` afterwards does not change the other.
        `model` is returned itself when it has nothing to fold. `model` is
        never changed. In training mode the folded model differs (no batch
        statistics): fold for inference and export only.
    """
    folding = _Folding(model)
    if not folding.pairs:
        return model
    folding.refresh()
    return folding.model


# kcnn.predict and kcnn.evaluate: the folded model of each model they see,
# kept while the model lives (a second copy of its weights). Its graph cannot
# change (functional graphs are immutable) but its weights can (training
# between calls), so every call copies them in afresh; what the cache saves is
# the clone and the compiled predict function (a new `jax.jit` or
# `tf.function` trace for every call otherwise).
_INFERENCE = weakref.WeakKeyDictionary()


def inference_model(model):
    """`fold_batch_norm(model)`, built once per model, weights refreshed per call.

    For repeated inference on a model whose weights may change between calls
    (kcnn.predict, kcnn.evaluate).
    """
    folding = _INFERENCE.get(model)
    if folding is None:
        folding = _Folding(model)
        _INFERENCE[model] = folding
    if not folding.pairs:
        return model
    folding.refresh()
    return folding.model


def _has_graph(model):
    if isinstance(model, keras.Sequential):
        return internal.sequential_graph(model) is not None
    return internal.is_graph_model(model)


class _Folding:
    """The folded clone of a model and how to fill its weights from the model's."""

    def __init__(self, model):
        self.pairs = {}  # id(batch norm) -> (layer before it, batch norm)
        if not isinstance(model, keras.Model) or (
                isinstance(model, keras.Sequential) and not _has_graph(model)):
            raise ValueError(
                f"fold_batch_norm takes a Keras model with a graph (functional, or a "
                f"Sequential built with an input shape); received "
                f"{type(model).__name__}"
                + (" that is not built" if isinstance(model, keras.Model) else "") + ".")
        if not _has_graph(model):
            return  # a subclassed model: no graph to rewrite
        # A plain functional view of the graph: no compiled state to clone (a
        # compiled model's clone would build an optimizer), and a Sequential's
        # graph as a functional one, so the batch norms can be skipped.
        graph = (internal.sequential_graph(model) if isinstance(model, keras.Sequential)
                 else model)
        view = keras.Model(graph.input, graph.output, name=model.name)
        _find_pairs(view, self.pairs)
        self.layers = []  # (original, clone) of every cloned layer
        self.model = None
        if not self.pairs:
            return
        folded_layers = {id(layer) for layer, _ in self.pairs.values()}

        def clone(layer):
            if id(layer) in self.pairs:
                return layer  # never called: `call` skips it
            config = layer.get_config()
            if id(layer) in folded_layers:
                config["use_bias"] = True
            new = layer.__class__.from_config(config)
            self.layers.append((layer, new))
            return new

        def call(layer, *args, **kwargs):
            if id(layer) in self.pairs:
                return args[0] if args else kwargs["inputs"]
            return layer(*args, **kwargs)

        strategy = getattr(model, "distribute_strategy", None)
        scope = (strategy.scope() if getattr(strategy, "num_replicas_in_sync", 1) > 1
                 else contextlib.nullcontext())
        # Under a TensorFlow strategy the clone is made in its scope, where
        # Keras records the strategy that predict splits batches with.
        with scope:
            clone_ = keras.models.clone_model(view, clone_function=clone,
                                              call_function=call, recursive=True)
            if isinstance(model, Model):
                clone_ = Model(clone_.input, clone_.output, name=model.name,
                               metadata=model.metadata)
        self.model = clone_
        self.norm_of = {id(layer): bn for layer, bn in self.pairs.values()}

    def refresh(self):
        """Copy `model`'s current weights into the clone, folding the pairs."""
        for layer, new in self.layers:
            bn = self.norm_of.get(id(layer))
            if bn is None:
                # A copy, not the same buffer: Keras's JAX steps donate their
                # state, which would delete an array the two models shared.
                for target, source in zip(new.weights, layer.weights):
                    target.assign(keras.ops.copy(source.value))
            else:
                kernel, bias = _folded(layer, bn)
                new.kernel.assign(kernel)
                new.bias.assign(bias)


def _find_pairs(graph, pairs):
    """Fill `pairs` with the foldable (layer, batch norm) of `graph` and of
    the functional models nested in it."""
    nodes = [node for depth in internal.nodes_by_depth(graph).values() for node in depth]
    calls, readers = {}, {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for tensor in node.input_tensors:
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    outputs = {id(t) for t in graph.outputs}
    for node in nodes:
        op = node.operation
        if (internal.is_graph_model(op) and not isinstance(op, keras.Sequential)
                and op is not graph):
            _find_pairs(op, pairs)
        if (not isinstance(op, keras.layers.BatchNormalization) or node.is_input
                or calls[id(op)] != 1 or len(node.input_tensors) != 1):
            continue
        x = node.input_tensors[0]
        if readers[id(x)] != 1 or id(x) in outputs:
            continue
        layer = internal.producer(x)
        if (isinstance(layer, _CONVS + _DEPTHWISE) and calls.get(id(layer)) == 1
                and _linear(layer) and _channel_axis(layer, x) == op.axis % len(x.shape)):
            pairs[id(op)] = (layer, op)


def _linear(layer):
    return (getattr(layer.activation, "__name__", None) == "linear"
            and getattr(layer, "quantization_mode", None) is None
            and not getattr(layer, "lora_enabled", False))


def _channel_axis(layer, x):
    rank = len(x.shape)
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return rank - 1


def _folded(layer, bn):
    """The kernel and bias of `layer` followed by `bn` in inference, in float64,
    cast to the layer's variable dtype."""
    def value(variable):
        return np.asarray(keras.ops.convert_to_numpy(variable), np.float64)

    kernel = value(layer.kernel)
    channels = kernel.shape[-2] * kernel.shape[-1] if isinstance(layer, _DEPTHWISE) \
        else kernel.shape[-1]
    bias = value(layer.bias) if layer.use_bias else np.zeros(channels)
    gamma = value(bn.gamma) if bn.scale else np.ones(channels)
    beta = value(bn.beta) if bn.center else np.zeros(channels)
    scale = gamma / np.sqrt(value(bn.moving_variance) + bn.epsilon)
    if isinstance(layer, _DEPTHWISE):
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale
    bias = (bias - value(bn.moving_mean)) * scale + beta
    dtype = keras.backend.standardize_dtype(layer.kernel.dtype)
    return kernel.astype(dtype), bias.astype(dtype)
