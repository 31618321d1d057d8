"""Every use of private Keras in kcnn, one small function each.

Keras 3 has no public API for some things kcnn needs: walking a functional
model's graph (which layer call made a tensor, the calls in order), a layer's
nested sublayers, the variables a layer or optimizer was built with, an
optimizer's learning rate as set (a schedule or a variable), and the list of
variables whose initialisation Keras has deferred. kcnn reads them here only,
so a Keras release that moves one breaks this module, and
`tests/test_keras_internal.py` (one test per function, on a tiny real model or
optimizer) fails first, naming the attribute. The names and meanings below
were checked against Keras 3.15.1.

A missing attribute raises `AttributeError` saying which private attribute of
which Keras class is gone, rather than a bare `AttributeError` deep in a caller.
"""

import keras


def _read(obj, name, purpose):
    try:
        return getattr(obj, name)
    except AttributeError:
        raise AttributeError(
            f"kcnn reads the private Keras attribute {type(obj).__name__}.{name} "
            f"({purpose}), which Keras {keras.__version__} does not have: update "
            f"kcnn/_keras_internal.py for this Keras version.") from None


# ----------------------------------------------------------------------------
# Graphs of functional models


def keras_history(tensor):
    """`KerasTensor._keras_history`: `(operation, node_index, tensor_index)`,
    the layer call that produced a symbolic tensor.

    Public Keras only goes from layers to tensors (`layer.output`), never
    back from a tensor to the layer that made it.
    """
    return _read(tensor, "_keras_history", "the layer call that made a KerasTensor")


def producer(tensor):
    """The layer (operation) whose call produced the KerasTensor `tensor`."""
    return keras_history(tensor).operation


def inbound_nodes(layer):
    """`Operation._inbound_nodes`: one `Node` per call of `layer` in a graph,
    in call order; each node holds its `input_tensors` and `outputs`.

    The public `layer.input` gives the first call's inputs only, and raises
    for a layer never called.
    """
    return _read(layer, "_inbound_nodes", "the calls of a layer in a functional graph")


def producing_node(tensor):
    """The `Node` (layer call) that produced the KerasTensor `tensor`."""
    history = keras_history(tensor)
    return inbound_nodes(history.operation)[history.node_index]


def is_graph_model(model):
    """Whether `model` is a Keras model with a functional graph to walk
    (`Functional` is not exported; its `_nodes_by_depth` marks it)."""
    return isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")


def nodes_by_depth(model):
    """`Functional._nodes_by_depth`: depth -> the graph's nodes (layer calls)
    at that depth; the outputs are at depth 0, the inputs deepest.

    `model.operations` lists each layer once, not each call, and without the
    order in which calls depend on each other.
    """
    return _read(model, "_nodes_by_depth", "a functional model's layer calls by depth")


def run_graph_releasing(model, inputs, operation_fn=lambda op: op, overwrite=None):
    """`Function._run_through_graph` of the functional `model`, releasing each
    intermediate tensor once the last layer call that reads it has run.

    Keras's loop keeps every intermediate in one dict until the whole graph
    has run. Under a tracing backend (tf.function, jax.jit) that costs nothing,
    but torch runs eagerly: no activation's memory can be reused within a
    forward pass, so each layer writes into freshly mapped pages. torchvision's
    modules let each tensor go as soon as it is consumed. Released here the
    same way, MobileNetV2 infers 1.4x, EfficientNet-B0 1.25x and ResNet-50
    1.17x faster on torch (b16, 224; `benchmarks/graph_run.py`,
    `benchmarks/results/graph_run_torch.json`). The same nodes run in the same order
    with the same arguments as Keras's loop (depth by depth, the deepest
    first; a node whose inputs are not computed is skipped), reading the same
    private node attributes.

    `overwrite(layer, values, free)`, if given, is offered each layer call
    that reads a tensor no later call reads and that is not an output:
    `values` are the call's input tensors in order, `free` maps the index of
    each such tensor to every other tensor still held (the call's other
    inputs and the model's inputs among them); what it returns (not None) is
    the call's result (`kcnn.layers.inplace`).
    """
    from keras import tree

    depths = _read(model, "_nodes_by_depth", "a functional model's layer calls by depth")
    tensors = {}
    given = tree.flatten(inputs)
    for x, y in zip(_read(model, "_inputs", "a functional model's input tensors"), given):
        tensors[id(x)] = y
    nodes = [node for depth in sorted(depths, reverse=True) for node in depths[depth]
             if node.operation and not node.is_input]
    uses = {}
    for node in nodes:
        for x in node.input_tensors:
            uses[id(x)] = uses.get(id(x), 0) + 1
    outputs = _read(model, "_outputs", "a functional model's output tensors")
    kept = {id(x) for x in outputs}
    for node in nodes:
        if any(id(x) not in tensors for x in node.input_tensors):
            continue  # not computable from these inputs (Keras skips it too)
        operation = model._get_operation_for_node(node)
        results = None
        if overwrite is not None:
            free = {i: id(x) for i, x in enumerate(node.input_tensors)
                    if uses[id(x)] == 1 and id(x) not in kept}
            if free:
                values = [tensors[id(x)] for x in node.input_tensors]
                free = {i: [v for k, v in tensors.items() if k != key] + given
                        for i, key in free.items()}
                results = overwrite(operation, values, free)
                del values, free
        if results is None:
            args, kwargs = node.arguments.fill_in(tensors)
            results = operation_fn(operation)(*args, **kwargs)
            del args, kwargs
        for x in node.input_tensors:
            uses[id(x)] -= 1
            if not uses[id(x)] and id(x) not in kept:
                tensors.pop(id(x), None)
        for x, y in zip(node.outputs, tree.flatten(results)):
            tensors[id(x)] = y
    for i, x in enumerate(outputs):
        if id(x) not in tensors:
            path = ".".join(str(p) for p in tree.flatten_with_path(model._outputs_struct)[i][0])
            raise ValueError(f"Output with path `{path}` is not connected to `inputs`")
    return tree.pack_sequence_as(model._outputs_struct, [tensors[id(x)] for x in outputs])


def standardized_inputs(model, inputs):
    """`Functional._standardize_inputs`: `inputs` as the functional `model`'s
    flat list of input tensors, as `Functional.call` passes them on."""
    return _read(model, "_standardize_inputs", "a functional model's input checks")(inputs)


def inference_call(operation):
    """`operation`'s call in an inference graph run on torch with autograd off:
    the layer's own `call` where Keras's `Layer.__call__` would only pass the
    tensors through, else `operation(...)`; `training=False` either way to a
    layer whose `call` takes `training` (as Keras's `operation_fn` passes it).

    Why: on torch, which runs eagerly, `Layer.__call__`'s own work (input
    conversion, dtype policy, masks, call context, name scope) costs about
    0.1-0.15 ms a layer on 2 cores, whatever the batch. At batch 2, 64x64,
    ResNet-50 and EfficientNet-B0 inferred in 1.34x and 1.32x of this path's
    time through it (`benchmarks/graph_run.py --batch-size 2 --image-size 64`,
    `benchmarks/results/graph_run_small/graph_run_torch.json`); at batch 16,
    224x224 the difference is within the rounds' spread (0.92-0.99,
    `benchmarks/results/graph_run_b16_keras_call/`). That work changes
    nothing when the layer is built, its dtype policy computes in its variable
    dtype (no autocast, no quantization), it has no activity regularizer, and
    every tensor it gets is a `torch.Tensor` of its compute dtype without a
    Keras mask; only then is `call` run directly.
    """
    import torch

    from keras import tree

    extra = {"training": False} if getattr(operation, "_call_has_training_arg", False) else {}
    policy = getattr(operation, "dtype_policy", None)
    direct = (isinstance(operation, keras.layers.Layer) and operation.built
              and policy is not None and getattr(policy, "quantization_mode", None) is None
              and policy.compute_dtype == policy.variable_dtype
              and getattr(operation, "activity_regularizer", None) is None)
    compute = getattr(torch, policy.compute_dtype, None) if direct else None

    def run(*args, **kwargs):
        kwargs.update(extra)
        if direct and all(type(x) is torch.Tensor and x.dtype == compute
                          and getattr(x, "_keras_mask", None) is None
                          for x in tree.flatten((args, kwargs)) if keras.ops.is_tensor(x)):
            return operation.call(*args, **kwargs)
        return operation(*args, **kwargs)

    return run


def sequential_graph(model):
    """`Sequential._functional`: the functional model a built `Sequential`
    runs, whose graph has the Sequential's own layers and nodes (None before
    the Sequential is built with an input shape)."""
    return _read(model, "_functional", "the graph of a built Sequential model")


# ----------------------------------------------------------------------------
# Layers


def flatten_layers(layer, include_self=True, recursive=True):
    """`Layer._flatten_layers`: `layer` (if `include_self`) and the layers it
    tracks, nested ones too if `recursive`, each once, depth first.

    `model.layers` lists the top level only; layers nested in custom layers
    or in nested models are not in it.
    """
    method = _read(layer, "_flatten_layers", "the nested layers of a layer")
    return list(method(include_self=include_self, recursive=recursive))


def sublayers(layer):
    """`Layer._layers`: the layers `layer` tracks directly (empty for a leaf
    layer such as `Conv2D`); a `Layer` has no public `layers`."""
    return _read(layer, "_layers", "the direct sublayers of a layer")


def created_trainable_variables(layer):
    """`Layer._trainable_variables`: the variables `layer` itself created as
    trainable, whatever `layer.trainable` says now.

    The public `trainable_variables` is empty for a frozen layer, so it
    cannot tell a frozen convolution from a layer without parameters.
    """
    return _read(layer, "_trainable_variables", "the variables a layer created trainable")


# ----------------------------------------------------------------------------
# Optimizers


def learning_rate_setting(optimizer):
    """`Optimizer._learning_rate`: the learning rate as set, a
    `LearningRateSchedule`, a callable or a variable.

    The public `learning_rate` is its value at the current step, so it cannot
    tell a schedule from a constant.
    """
    return _read(optimizer, "_learning_rate", "an optimizer's learning rate or schedule")


def variable_key(optimizer, variable):
    """`Optimizer._var_key`: the key under which `optimizer` tracks a model
    variable (its `id`; on TensorFlow, the unique id of the underlying
    `tf.Variable` or of its distributed container, so that one variable has
    one key on every replica of a `tf.distribute` strategy)."""
    return _read(optimizer, "_var_key", "how an optimizer keys model variables")(variable)


def uses_weight_decay(optimizer, variable):
    """`Optimizer._use_weight_decay`: whether `variable` was left out by
    `exclude_from_weight_decay` (by variable or by name pattern).

    Keras applies that exclusion only to its own decoupled decay; kcnn's `SGD`
    reads it for its coupled L2.
    """
    return _read(optimizer, "_use_weight_decay",
                 "which variables an optimizer's weight decay skips")(variable)


def built_variables(optimizer):
    """`Optimizer._trainable_variables`: the model variables `optimizer` was
    last built on, in order (`optimizer.variables` are its own slots)."""
    return _read(optimizer, "_trainable_variables", "the variables an optimizer was built on")


def is_built_on(optimizer, variable):
    """Whether `optimizer` was built on `variable`
    (`Optimizer._trainable_variables_indices`, keyed by `variable_key`)."""
    indices = _read(optimizer, "_trainable_variables_indices",
                    "an optimizer's index of the variables it was built on")
    return variable_key(optimizer, variable) in indices


def forget_built_variables(optimizer):
    """Empty `Optimizer._trainable_variables_indices`, so that building again
    on other variables does not keep the old ones as known (`build` adds to
    the index and never clears it)."""
    _read(optimizer, "_trainable_variables_indices",
          "an optimizer's index of the variables it was built on")
    optimizer._trainable_variables_indices = {}


# ----------------------------------------------------------------------------
# Global state


def _global_state():
    # Imported on use: if Keras moves the module, only these two functions break.
    from keras.src.backend.common import global_state

    return global_state


def uninitialized_variables():
    """A copy of the variables whose initialisation Keras has deferred
    (`keras.src.backend.common.global_state`'s "uninitialized_variables").

    Variables created inside a `StatelessScope` join that list, and Keras
    initialises the whole list on leaving the next scope that initialises;
    no public API reads or restores it.
    """
    return list(_global_state().get_global_attribute(
        "uninitialized_variables", [], set_to_default=True))


def set_uninitialized_variables(variables):
    """Replace Keras's list of variables waiting to be initialised (see
    `uninitialized_variables`)."""
    _global_state().set_global_attribute("uninitialized_variables", list(variables))
