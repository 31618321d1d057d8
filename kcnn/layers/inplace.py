"""Activations, batch norms, sums and products computed into their input on torch, where
nothing else reads it.

torchvision builds its ReLUs with `inplace=True` and adds a residual block's
shortcut with `out += identity`: in inference each of them overwrites a tensor
it reads instead of writing a new one, which on a CPU is a pass over fresh
memory (page faults and all). Keras's activation and merge layers always write
a new tensor. kcnn's functional models (`kcnn.models._common.Model`) know,
while they run, which tensors a layer call reads for the last time, and hand
such a call here. ResNet-50's, MobileNetV2's and EfficientNet-B0's inference
steps on torch took 0.99x, 0.93x and 0.92x of the time with their activations
in place (b16, 224; `benchmarks/graph_run.py`,
`benchmarks/results/graph_run_torch.json`), 0.86x, 0.77x and 0.85x with the
residual sums and squeeze-and-excitation products in place too
(`benchmarks/results/graph_run_b16_inplace_merge/graph_run_torch.json`), and
0.77x, 0.62x and 0.64x with the batch norms in place as well
(`benchmarks/results/graph_run_b16_inplace_bn/graph_run_torch.json`;
torchvision's `eval()` batch norms write a new tensor).

`overwrite` returns None, and the layer runs as usual, unless all of these hold,
so that no one can see the difference but the clock:
- the backend is torch, autograd is off (inference; in training autograd keeps
  the input of a ReLU6 and the output of a ReLU), no tensor needs a gradient
  or carries a Keras mask, every tensor has the layer's compute dtype, and
  nothing is tracing (torch.compile, torch.export: a program keeps Keras's ops);
- the layer is a plain activation: `keras.layers.ReLU` without a slope or
  threshold (max_value None or 6), or `keras.layers.Activation` of relu,
  relu6 or silu (Keras's "swish"); or `keras.layers.Add` or
  `keras.layers.Multiply` of inputs of one rank, written into the first or the
  second input, whichever has the result's shape (a product with a broadcast
  scale keeps the feature map's shape), so that the sums and products are
  Keras's, in Keras's order; or, in inference only (not with `training=True`,
  autograd off or not), kcnn's `BatchNormalization` computing in float32 on a
  4-D input, with its moving statistics (one `torch.addcmul` into its input,
  `BatchNormalization._torch_inference`); no activity regularizer;
- the tensor written into is read by no other layer call after this one, is
  not an output of the model, and shares no memory with the model's inputs or
  any other tensor still held (a layer may return its input or a view of it).
"""

import keras

from kcnn.layers import normalization


def _function(layer, x, inference):
    """The in-place torch function equal to `layer`'s call on `x`, or None."""
    import torch
    import torch.nn.functional as F

    if getattr(layer, "activity_regularizer", None) is not None:
        return None
    if isinstance(layer, normalization.BatchNormalization):
        if inference and layer.compute_dtype == "float32" and layer._fused_torch(x, None):
            return lambda x: layer._torch_inference(x, out=x)
        return None
    if type(layer) is keras.layers.ReLU:
        if layer.negative_slope or layer.threshold:
            return None
        if layer.max_value is None:
            return torch.relu_
        if float(layer.max_value) == 6.0:
            return lambda x: F.hardtanh_(x, 0.0, 6.0)
        return None
    if type(layer) is keras.layers.Activation:
        activation = layer.activation
        if activation is keras.activations.relu:
            return torch.relu_
        if activation is keras.activations.relu6:
            return lambda x: F.hardtanh_(x, 0.0, 6.0)
        if activation in (keras.activations.silu, keras.activations.swish):
            return lambda x: F.silu(x, inplace=True)
    return None


def tracing():
    """Whether torch.compile or torch.export is tracing (kcnn's eager-only levers step aside)."""
    import torch

    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def overwrite(layer, values, free, inference=False):
    """`layer(values)` written into one of `values`, or None where that cannot be
    shown to be the same.

    `free`: {index of a tensor in `values` that may be written into: every other
    tensor the caller still holds (the model's inputs among them)}; the tensor
    written into must share no memory with any of those. `inference`: the
    caller runs the model in inference (a batch norm then uses its moving
    statistics; with `training=True` it must not be written in place, autograd
    off or not).
    """
    import torch

    if torch.is_grad_enabled() or tracing() \
            or getattr(layer, "activity_regularizer", None) is not None:
        return None
    for x in values:
        if (type(x) is not torch.Tensor or x.requires_grad
                or getattr(x, "_keras_mask", None) is not None
                or keras.backend.standardize_dtype(x.dtype) != layer.compute_dtype):
            return None  # a FakeTensor or FunctionalTensor (torch.export, torch.compile) is
            # not `torch.Tensor` itself: a traced program keeps the layer's own op
    if len(values) == 1:
        function = _function(layer, values[0], inference)
        if function is None or 0 not in free or _shares_memory(values[0], free[0]):
            return None
        return function(values[0])
    return _merge(layer, values, free)


def _merge(layer, values, free):
    """Keras's `Add` or `Multiply` of `values` (`output = values[0]`, then
    `output = output op values[i]` in order) into `values[0]` or `values[1]`."""
    import torch

    operations = {keras.layers.Add: torch.Tensor.add_, keras.layers.Multiply: torch.Tensor.mul_}
    operation = operations.get(type(layer))
    if operation is None or len({x.ndim for x in values}) != 1:
        return None  # Keras reshapes inputs of different ranks its own way
    try:
        shape = torch.broadcast_shapes(*(x.shape for x in values))
    except RuntimeError:
        return None  # Keras's own call raises its error
    for target in (0, 1):  # a + b == b + a and a * b == b * a exactly
        if (target in free and values[target].shape == shape
                and not _shares_memory(values[target], free[target])):
            output = operation(values[target], values[1 - target])
            for x in values[2:]:
                output = operation(output, x)
            return output
    return None


def _shares_memory(x, others):
    import torch

    storage = x.untyped_storage().data_ptr()
    return any(isinstance(o, torch.Tensor) and o.untyped_storage().data_ptr() == storage
               for o in others)
