"""The private Keras that kcnn relies on, one test per function of
`kcnn._keras_internal`, each on a tiny real model or optimizer.

A Keras release that moves or changes one of these attributes fails here
first, naming the function (and, where the attribute is gone, the attribute).
"""

import weakref

import keras
import numpy as np
import pytest

from kcnn import _keras_internal as internal


def _tiny():
    inputs = keras.Input((6, 6, 1), name="image")
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(3, name="dense")(x)
    outputs = keras.layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _shared():
    """A model calling one Dense layer twice."""
    inputs = keras.Input((4,), name="features")
    shared = keras.layers.Dense(4, name="shared")
    outputs = shared(shared(inputs))
    return keras.Model(inputs, outputs), shared


def _nested():
    inner = _tiny()
    inputs = keras.Input((6, 6, 1))
    outputs = keras.layers.Dense(2, name="head")(inner(inputs))
    return keras.Model(inputs, outputs, name="outer"), inner


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def _variables():
    return [keras.Variable(np.ones((2,), "float32"), name=f"v{i}") for i in range(3)]


# ----------------------------------------------------------------------------
# Graphs of functional models


def test_keras_history_names_the_layer_call_that_made_a_tensor():
    model = _tiny()
    operation, node_index, tensor_index = internal.keras_history(model.outputs[0])
    assert operation is model.get_layer("softmax"), "KerasHistory.operation changed"
    assert (node_index, tensor_index) == (0, 0), "KerasHistory indices changed"


def test_producer_is_the_layer_whose_call_made_a_tensor():
    model = _tiny()
    dense = model.get_layer("dense")
    assert internal.producer(dense.output) is dense
    assert internal.producer(model.inputs[0]).name == "image"


def test_inbound_nodes_are_one_node_per_call_in_call_order():
    model = _tiny()
    dense = model.get_layer("dense")
    (node,) = internal.inbound_nodes(dense)
    assert node.input_tensors[0] is model.get_layer("flatten").output
    assert node.outputs[0] is dense.output
    _, shared = _shared()
    first, second = internal.inbound_nodes(shared)
    assert second.input_tensors[0] is first.outputs[0]
    assert internal.inbound_nodes(keras.layers.Dense(2)) == []


def test_producing_node_is_the_call_that_made_the_tensor():
    model, shared = _shared()
    first, second = internal.inbound_nodes(shared)
    assert internal.producing_node(model.outputs[0]) is second
    assert internal.producing_node(first.outputs[0]) is first


def test_is_graph_model_tells_functional_models_from_others():
    assert internal.is_graph_model(_tiny()), "a functional model is no longer recognised"
    assert not internal.is_graph_model(_Subclassed())
    assert not internal.is_graph_model(keras.layers.Dense(2))


def test_nodes_by_depth_puts_outputs_at_depth_0_and_inputs_deepest():
    model = _tiny()
    by_depth = internal.nodes_by_depth(model)
    assert sorted(by_depth) == [0, 1, 2, 3, 4]
    order = [node.operation.name for depth in sorted(by_depth, reverse=True)
             for node in by_depth[depth]]
    assert order == ["image", "conv", "flatten", "dense", "softmax"]
    assert [node.is_input for node in by_depth[4]] == [True]


def test_sequential_graph_is_a_functional_model_of_the_same_layers():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d1"),
                              keras.layers.Dense(1, name="d2")])
    graph = internal.sequential_graph(model)
    assert internal.is_graph_model(graph)
    assert [op.name for op in graph.operations][-2:] == ["d1", "d2"]
    assert graph.get_layer("d1") is model.get_layer("d1")
    assert internal.sequential_graph(keras.Sequential([keras.layers.Dense(2)])) is None


# ----------------------------------------------------------------------------
# Layers


def test_flatten_layers_walks_nested_models_depth_first():
    model, inner = _nested()
    names = [layer.name for layer in internal.flatten_layers(model, include_self=False)]
    # Keras 3.15 lists a nested layer's own sublayers last first (`extendleft`):
    # `kcnn.training.plots.first_layer_filters` takes the first Conv2D in this order.
    assert names[1:] == ["tiny", "softmax", "dense", "flatten", "conv", "image", "head"], names
    assert internal.flatten_layers(model)[0] is model
    top = internal.flatten_layers(model, include_self=False, recursive=False)
    assert inner in top and inner.get_layer("conv") not in top


def test_sublayers_are_empty_for_a_leaf_layer():
    model, inner = _nested()
    assert list(internal.sublayers(inner.get_layer("conv"))) == []
    assert inner.get_layer("conv") in internal.sublayers(inner)
    assert inner in internal.sublayers(model)


def test_created_trainable_variables_survive_freezing():
    conv = _tiny().get_layer("conv")
    conv.trainable = False
    assert conv.trainable_variables == []  # why the public list does not do
    assert [v.name for v in internal.created_trainable_variables(conv)] == ["kernel", "bias"]
    dropout = keras.layers.Dropout(0.5, seed=1)
    assert list(internal.created_trainable_variables(dropout)) == []


# ----------------------------------------------------------------------------
# Optimizers


def test_learning_rate_setting_is_the_schedule_or_the_variable():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert internal.learning_rate_setting(keras.optimizers.SGD(schedule)) is schedule
    setting = internal.learning_rate_setting(keras.optimizers.SGD(0.25))
    assert isinstance(setting, keras.Variable)
    assert float(keras.ops.convert_to_numpy(setting)) == 0.25


def test_variable_key_is_stable_and_distinct():
    optimizer = keras.optimizers.SGD(0.1)
    a, b, _ = _variables()
    assert internal.variable_key(optimizer, a) == internal.variable_key(optimizer, a)
    assert internal.variable_key(optimizer, a) != internal.variable_key(optimizer, b)


def test_uses_weight_decay_follows_exclude_from_weight_decay():
    optimizer = keras.optimizers.SGD(0.1)
    a, b, c = _variables()
    optimizer.exclude_from_weight_decay(var_list=[a], var_names=["v2"])
    assert not internal.uses_weight_decay(optimizer, a)
    assert internal.uses_weight_decay(optimizer, b)
    assert not internal.uses_weight_decay(optimizer, c)  # by name


def test_built_variables_are_the_build_list_in_order():
    optimizer = keras.optimizers.Adam(0.1)
    a, b, _ = _variables()
    optimizer.build([b, a])
    assert list(internal.built_variables(optimizer)) == [b, a]


def test_is_built_on_knows_the_build_list():
    optimizer = keras.optimizers.Adam(0.1)
    a, b, c = _variables()
    optimizer.build([a, b])
    assert internal.is_built_on(optimizer, a) and internal.is_built_on(optimizer, b)
    assert not internal.is_built_on(optimizer, c)


def test_forget_built_variables_lets_a_rebuild_drop_old_variables():
    optimizer = keras.optimizers.SGD(0.1)
    a, b, c = _variables()
    optimizer.build([a, b])
    internal.forget_built_variables(optimizer)
    assert not internal.is_built_on(optimizer, a)
    optimizer.built = False  # SGD.build returns at once on a built optimizer
    optimizer.build([c])
    assert internal.is_built_on(optimizer, c) and not internal.is_built_on(optimizer, a)


# ----------------------------------------------------------------------------
# Global state


def test_uninitialized_variables_lists_deferred_variables_and_can_be_restored():
    before = internal.uninitialized_variables()
    try:
        with keras.StatelessScope(initialize_variables=False):
            deferred = keras.Variable(keras.initializers.Zeros(), shape=(2,), name="deferred")
        pending = internal.uninitialized_variables()
        assert any(v is deferred for v in pending), "Keras no longer lists deferred variables"
    finally:
        internal.set_uninitialized_variables(before)
    assert [id(v) for v in internal.uninitialized_variables()] == [id(v) for v in before]


# ----------------------------------------------------------------------------
# The error when an attribute is gone


def test_a_missing_attribute_names_itself_and_the_keras_version():
    with pytest.raises(AttributeError, match=r"object\._keras_history .*Keras 3\."):
        internal.keras_history(object())


class _Remember(keras.layers.Layer):
    """Doubles its input and keeps a weak reference to its output."""

    def call(self, x):
        y = x * 2.0
        self.output_ref = weakref.ref(y)
        return y


class _Probe(keras.layers.Layer):
    """Records whether `remembered`'s last output is still alive when it runs."""

    def __init__(self, remembered, **kwargs):
        super().__init__(**kwargs)
        self.remembered = remembered
        self.saw_alive = None

    def call(self, x):
        self.saw_alive = self.remembered.output_ref() is not None
        return x + 1.0


def _branching(model_cls):
    """`a` feeds `b` only (its last use); `b` feeds a branch and the add; the probe
    runs after the add; `b` is also an output, so it must be kept. The layers
    reading `a` are frozen: torch's autograd would otherwise keep `a` for the
    gradient of b's kernel. (A list of inputs, as the add takes, passes
    through Keras's torch tree functions, whose closures keep it until the
    garbage collector's next pass: `a` stays out of one.)"""
    inputs = keras.Input((4,), name="features")
    remember = _Remember(name="a")
    a = remember(inputs)
    b = keras.layers.Dense(4, name="b", trainable=False)(a)
    branch = keras.layers.Dense(4, name="branch")(b)
    added = keras.layers.Add(name="add")([b, branch])
    probe = _Probe(remember, name="probe")
    out = keras.layers.Dense(2, name="out")(probe(added))
    return model_cls(inputs, [out, b]), probe


def test_run_graph_releasing_equals_keras_run_and_drops_each_tensor_after_its_last_use():
    from kcnn.models._common import Model

    ours, probe = _branching(Model)
    theirs, their_probe = _branching(keras.Model)
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    expected = theirs(x)  # eager: Keras's loop holds every intermediate
    assert their_probe.saw_alive is True
    got = internal.run_graph_releasing(ours, [x], lambda op: op)
    assert probe.saw_alive is False
    for a, b in zip(got, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a),
                                   keras.ops.convert_to_numpy(b), rtol=1e-6, atol=1e-6)
    probe.saw_alive = None
    for a, b in zip(ours(x), expected):  # kcnn's models run this way
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a),
                                   keras.ops.convert_to_numpy(b), rtol=1e-6, atol=1e-6)
    assert probe.saw_alive is False


class _Counted(keras.layers.Layer):
    """Scales its input; counts Keras's `__call__` and its own `call` apart."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dunder = self.calls = 0

    def __call__(self, *args, **kwargs):
        self.dunder += 1
        return super().__call__(*args, **kwargs)

    def call(self, x, training=None):
        self.calls += 1
        return x * 2.0 if not training else x * 3.0


def _inference_graph(model_cls):
    """Convolution, batch norm with real statistics, dropout, a nested model, an
    add of two branches, a dense head, and two counted layers (one at the input)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    first = _Counted(name="first")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(first)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    nested_in = keras.Input((8, 8, 4))
    nested = keras.Model(nested_in, keras.layers.Conv2D(4, 1, name="inner")(nested_in),
                         name="nested")
    branch = nested(x)
    x = keras.layers.Add(name="add")([x, _Counted(name="middle")(branch)])
    x = keras.layers.Dropout(0.5, name="dropout")(keras.layers.Flatten(name="flat")(x))
    model = model_cls(inputs, keras.layers.Dense(3, name="head")(x))
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 4).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 4).astype("float32"))
    return model


def test_inference_runs_each_layers_call_directly_on_torch_and_equals_keras():
    from kcnn.models._common import Model

    ours, theirs = _inference_graph(Model), _inference_graph(keras.Model)
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs(x, training=False))
    counted = [ours.get_layer("first"), ours.get_layer("middle")]
    torch_backend = keras.backend.backend() == "torch"
    if torch_backend:
        import torch

        no_grad = torch.no_grad
    else:
        import contextlib

        no_grad = contextlib.nullcontext
    for training in (False, None):
        for layer in counted:
            layer.dunder = layer.calls = 0
        with no_grad():
            got = keras.ops.convert_to_numpy(ours(x, training=training))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        for layer in counted:
            assert layer.calls == 1, (layer.name, training)
            # On torch with autograd off Keras's __call__ is skipped; elsewhere
            # (and in training) each layer goes through it.
            assert layer.dunder == (0 if torch_backend else 1), (layer.name, training)
    np.testing.assert_allclose(ours.predict_on_batch(x), expected, rtol=1e-6, atol=1e-6)

    # Where __call__ does work, it runs: in training, for a tensor of another
    # dtype than the layer computes in (cast by __call__), and for a layer
    # computing in another dtype than its variables' (autocast).
    for layer in counted:
        layer.dunder = 0
    ours(x, training=True)
    assert [layer.dunder for layer in counted] == [1, 1]
    plain, mixed = _Counted(), _Counted(dtype="mixed_float16")
    with no_grad():
        y = internal.inference_call(plain)(keras.ops.ones((2, 4), dtype="float16"))
        assert plain.dunder == 1 and keras.backend.standardize_dtype(y.dtype) == "float32"
        y = internal.inference_call(mixed)(keras.ops.ones((2, 4)))
        assert mixed.dunder == 1 and keras.backend.standardize_dtype(y.dtype) == "float16"
        y = internal.inference_call(plain)(keras.ops.ones((2, 4)))
        assert plain.dunder == (1 if torch_backend else 2) and plain.calls == 2
    assert np.all(keras.ops.convert_to_numpy(y) == 2.0)
