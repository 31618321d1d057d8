"""Activations, sums and products computed into their input (`kcnn.layers.inplace`)
change nothing but the clock.

A kcnn model runs its activation, `Add` and `Multiply` layers in place on torch
in inference where a tensor they read is read by nothing else; everywhere else,
and on the other backends, it runs them as Keras does. The graph below has calls
that may be done in place and calls that must not be (a tensor read again
later, a tensor that is also the output of a layer returning its input, the
model's own input, an output of the model), and must give Keras's outputs,
leave its input untouched, and on torch take the in-place path exactly where it
may.
"""

import keras
import numpy as np
import pytest

from kcnn.layers import inplace
from kcnn.models._common import Model

BACKEND = keras.backend.backend()


def _graph(model_cls):
    inputs = keras.Input((6,), name="x")
    first = keras.layers.ReLU(name="on_the_input")(inputs)            # the caller's tensor
    a = keras.layers.Dense(6, name="a")(first)
    b = keras.layers.ReLU(max_value=6.0, name="relu6_safe")(a)        # a read only here
    c = keras.layers.Dense(6, name="c")(b)
    kept = keras.layers.Identity(name="identity")(c)                  # the same tensor as c
    d = keras.layers.Activation("silu", name="silu_aliased")(kept)    # c is read again below
    e = keras.layers.Add(name="add_safe")([c, d])                     # c, d read only here
    f = keras.layers.Activation("relu", name="relu_branch")(e)        # e is read again below
    g = keras.layers.Dense(6, name="g")(keras.layers.Concatenate(name="cat")([e, f]))
    h = keras.layers.Activation("relu6", name="relu6_output")(g)      # g is an output
    i = keras.layers.Activation("silu", name="silu_safe")(keras.layers.Dense(6, name="i")(h))
    j = keras.layers.Dense(6, name="j")(h)
    k = keras.layers.Dense(1, name="k")(h)
    m = keras.layers.Multiply(name="mul_into_second")([k, j])         # k cannot hold (4, 6)
    n = keras.layers.Dense(6, name="n")(h)
    o = keras.layers.Add(name="add_read_again")([m, n])               # m, n read again below
    q = keras.layers.Add(name="add3_safe")([n, m, o])                 # (n + m) + o, into n
    t = keras.layers.Dense(6, name="t")(h)
    r = keras.layers.Add(name="add_into_second")([q, t])              # q read again below
    out = keras.layers.Concatenate(name="cat2")([q, r])
    return model_cls(inputs, [g, i, out], name="activations")


SAFE = {"relu6_safe", "silu_safe", "add_safe", "mul_into_second", "add3_safe",
        "add_into_second"}


@pytest.fixture(scope="module")
def models():
    ours, theirs = _graph(Model), _graph(keras.Model)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _spying(monkeypatch):
    overwritten, overwrite = [], inplace.overwrite

    def spy(layer, values, free, **kwargs):
        result = overwrite(layer, values, free, **kwargs)
        if result is not None:
            overwritten.append(layer.name)
        return result

    monkeypatch.setattr(inplace, "overwrite", spy)
    return overwritten


def test_outputs_and_input_are_keras_s_and_only_the_safe_calls_run_in_place(models,
                                                                           monkeypatch):
    ours, theirs = models
    overwritten = _spying(monkeypatch)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32") * 4
    given = keras.ops.convert_to_tensor(x)
    expected = [keras.ops.convert_to_numpy(y) for y in theirs.predict_on_batch(x)]
    got = ours.predict_on_batch(given)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), b, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(given), x)
    assert sorted(overwritten) == (sorted(SAFE) if BACKEND == "torch" else [])
    # In training (autograd on) nothing runs in place, and the gradients are Keras's.
    overwritten.clear()
    y = [np.zeros_like(e) for e in expected]
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = ours.get_weights()
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for w0, a, b in zip(before, ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a - w0, b - w0, rtol=1e-4, atol=1e-6)
    assert overwritten == []


def _batch_norm_graph(model_cls, norm):
    inputs = keras.Input((5, 5, 3), name="x")
    a = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(inputs)
    b = norm(name="bn_safe")(a)                                       # a read only here
    c = keras.layers.Conv2D(4, 1, name="conv_c")(b)
    d = norm(name="bn_read_again")(c)                                 # c read again below
    e = keras.layers.Add(name="add_safe")([c, d])
    return model_cls(inputs, e, name="batch_norms")


@pytest.fixture(scope="module")
def batch_norm_models():
    import kcnn

    ours = _batch_norm_graph(Model, kcnn.layers.BatchNormalization)
    theirs = _batch_norm_graph(keras.Model, keras.layers.BatchNormalization)
    rng = np.random.default_rng(1)
    weights = []
    for w in ours.get_weights():  # moving statistics far from 0 and 1
        weights.append(rng.uniform(0.5, 2.0, w.shape).astype("float32") if w.ndim == 1
                       else rng.normal(size=w.shape).astype("float32"))
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def test_batch_norm_in_place_in_inference_only(batch_norm_models, monkeypatch):
    ours, theirs = batch_norm_models
    overwritten = _spying(monkeypatch)
    x = np.random.default_rng(2).normal(size=(2, 5, 5, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours.predict_on_batch(x)),
                               keras.ops.convert_to_numpy(theirs.predict_on_batch(x)),
                               rtol=1e-5, atol=1e-5)
    assert sorted(overwritten) == (["add_safe", "bn_safe"] if BACKEND == "torch" else [])
    # training=True with autograd off (a forward pass under torch.no_grad, as in
    # a BN-statistics refresh): the batch's statistics and Keras's moving-average
    # update, so no batch norm may take the inference path in place.
    overwritten.clear()
    if BACKEND == "torch":
        import torch

        with torch.no_grad():
            got = ours(x, training=True)
    else:
        got = ours(x, training=True)
    expected = theirs(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                               keras.ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-4)
    for a, b in zip(ours.non_trainable_weights, theirs.non_trainable_weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6)
    assert not any(name.startswith("bn") for name in overwritten)


@pytest.mark.skipif(BACKEND != "torch", reason="torch tensors are the only mutable ones")
def test_each_refusal():
    import torch

    relu = keras.layers.ReLU()
    x = torch.ones(2, 3)
    assert inplace.overwrite(relu, [x], {0: [x.view(6)]}) is None      # shares memory
    assert inplace.overwrite(relu, [x], {}) is None                    # read again later
    assert inplace.overwrite(keras.layers.ReLU(negative_slope=0.1), [x], {0: []}) is None
    assert inplace.overwrite(keras.layers.ReLU(max_value=3.0), [x], {0: []}) is None
    assert inplace.overwrite(keras.layers.Activation("tanh"), [x], {0: []}) is None
    assert inplace.overwrite(keras.layers.Activation("relu", dtype="float16"), [x],
                             {0: []}) is None
    add, mul = keras.layers.Add(), keras.layers.Multiply()
    a, b, scale = torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 1)
    assert inplace.overwrite(add, [a, b], {}) is None                  # both read later
    assert inplace.overwrite(add, [a, b], {0: [b, a[0]], 1: [a, b[:, :1]]}) is None
    assert inplace.overwrite(mul, [scale, a], {0: [a]}) is None        # too small for a * s
    assert inplace.overwrite(add, [a, torch.ones(1, 2, 3)], {0: [], 1: []}) is None  # ranks
    assert inplace.overwrite(add, [a, torch.ones(2, 4)], {0: [], 1: []}) is None
    assert inplace.overwrite(keras.layers.Concatenate(), [a, b], {0: [b], 1: [a]}) is None
    assert inplace.overwrite(keras.layers.Subtract(), [a, b], {0: [b], 1: [a]}) is None
    masked = torch.ones(2, 3)
    masked._keras_mask = torch.ones(2, dtype=torch.bool)
    assert inplace.overwrite(add, [masked, b], {0: [b], 1: [masked]}) is None
    with torch.enable_grad():
        assert inplace.overwrite(relu, [x], {0: []}) is None           # autograd on
    with torch.no_grad():
        y = torch.tensor([-1.0, 2.0, 7.0])
        assert inplace.overwrite(keras.layers.Activation("relu6"), [y], {0: []}) is y
        np.testing.assert_array_equal(y.numpy(), [0.0, 2.0, 6.0])
        s, v = torch.tensor([[2.0], [3.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        assert inplace.overwrite(mul, [s, v], {0: [v], 1: [s]}) is v   # into the one that fits
        np.testing.assert_array_equal(v.numpy(), [[2.0, 4.0], [9.0, 12.0]])


@pytest.mark.skipif(BACKEND != "torch",
                    reason="torch.export traces in this process on torch only (JAX and "
                           "TensorFlow reach it through a torch process: tests/export)")
def test_torch_export_traces_keras_s_ops(models, tmp_path):
    """torch.export runs the graph on fake tensors: the in-place path and the kernel cache
    must step aside, and the program must give Keras's outputs."""
    import torch

    import kcnn

    ours, theirs = models
    inputs = keras.Input((6,))
    conv_like = keras.layers.Reshape((1, 1, 6))(inputs)
    conv = kcnn.layers.Conv2D(6, 1, padding=1, name="conv")(conv_like)
    flat = keras.layers.Flatten()(keras.layers.ReLU(name="relu_safe")(conv))
    model = Model(inputs, [ours(inputs)[1], flat])
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    expected = [keras.ops.convert_to_numpy(y) for y in model.predict_on_batch(x)]
    kcnn.export(model, tmp_path / "m.pt2", format="pt2")
    program = torch.export.load(str(tmp_path / "m.pt2"))
    got = program.module()(torch.from_numpy(x))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-5, atol=1e-5)
