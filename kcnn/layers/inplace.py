"""Activation layers computed into their input on torch, where nothing else reads it.

torchvision builds its ReLUs with `inplace=True`: in inference each activation
overwrites the convolution or batch-norm output it reads instead of writing a
new tensor, which on a CPU is a pass over fresh memory (page faults and all).
Keras's activation layers always write a new tensor. kcnn's functional models
(`kcnn.models._common.Model`) know, while they run, which tensor a layer call
reads for the last time, and hand such a call here: ResNet-50's, MobileNetV2's
and EfficientNet-B0's inference steps on torch took 0.99x, 0.93x and 0.92x of
the time with their activations in place (b16, 224; `benchmarks/graph_run.py`,
`benchmarks/results/graph_run_torch.json`).

`overwrite` returns None, and the layer runs as usual, unless all of these hold,
so that no one can see the difference but the clock:
- the backend is torch, autograd is off (inference; in training autograd keeps
  the input of a ReLU6 and the output of a ReLU), the tensor needs no
  gradient, and nothing is tracing (torch.compile, torch.export: a program
  keeps Keras's ops);
- the layer is a plain activation: `keras.layers.ReLU` without a slope or
  threshold (max_value None or 6), or `keras.layers.Activation` of relu,
  relu6 or silu (Keras's "swish"), without an activity regularizer, computing
  in the tensor's dtype;
- the tensor is read by no other layer call after this one, is not an output
  of the model, and shares no memory with the model's inputs or any other
  tensor still held (a layer may return its input or a view of it).
"""

import keras


def _function(layer):
    """The in-place torch function equal to `layer`'s call, or None."""
    import torch
    import torch.nn.functional as F

    if getattr(layer, "activity_regularizer", None) is not None:
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


def overwrite(layer, x, others):
    """`layer(x)` written into `x`, or None where that cannot be shown to be the same.

    `others`: every other tensor the caller still holds (the model's inputs
    among them); `x` must share no memory with any of them.
    """
    import torch

    if (type(x) is not torch.Tensor or torch.is_grad_enabled() or x.requires_grad
            or tracing() or keras.backend.standardize_dtype(x.dtype) != layer.compute_dtype):
        return None  # a FakeTensor or FunctionalTensor (torch.export, torch.compile) is not
        # `torch.Tensor` itself: a traced program keeps the layer's own op
    function = _function(layer)
    if function is None:
        return None
    storage = x.untyped_storage().data_ptr()
    if any(isinstance(o, torch.Tensor) and o.untyped_storage().data_ptr() == storage
           for o in others):
        return None
    return function(x)
