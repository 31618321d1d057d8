"""The models the OpenVINO and `.pt2` tests export, built once per process.

Batch norms hold the statistics of real activations (each one's moving mean
and variance are those of a batch of random images flowing through the model),
so that the outputs are not the near-constant ones of
initial statistics and a wrong fold or a wrong layout shows. Inputs are as
small as each builder allows.
"""

import functools

import keras
import numpy as np

import kcnn

BACKEND = keras.backend.backend()
# Outputs agree within this fraction of their largest magnitude.
RTOL = 1e-4

BUILDERS = {
    "lenet5": lambda: kcnn.lenet5(classifier_activation=None),
    # The paper's feature extractor (LRN, grouped convolutions) at its smallest
    # input; its 55M-weight classifier only slows the converters down.
    "alexnet_features": lambda: kcnn.alexnet(variant="paper", input_shape=(67, 67, 3),
                                             include_top=False),
    "resnet18": lambda: kcnn.resnet18(input_shape=(32, 32, 3), classes=10,
                                      classifier_activation=None),
    "mobilenet_v2": lambda: kcnn.mobilenet_v2(input_shape=(32, 32, 3), classes=10,
                                              classifier_activation=None),
    "efficientnet_b0": lambda: kcnn.efficientnet_b0(input_shape=(32, 32, 3), classes=10,
                                                    classifier_activation=None),
}


@functools.cache
def model(name):
    """The model `name` with batch-norm statistics of real activations."""
    keras.utils.set_random_seed(0)
    built = BUILDERS[name]()
    norms = [layer for layer in _layers(built)
             if isinstance(layer, keras.layers.BatchNormalization)]
    before = [keras.ops.convert_to_numpy(n.moving_variance).copy() for n in norms]
    x = np.random.default_rng(1).normal(size=(32,) + input_shape(built)).astype("float32")
    # The moving statistics become this batch's, and dropout and stochastic
    # depth stay off, so that inference sees the activations the statistics
    # came from: normalized ones, not logits in the thousands whose float32
    # rounding alone would exceed the tolerance.
    rates = [layer for layer in _layers(built) if hasattr(layer, "rate")]
    saved = [(n, "momentum", n.momentum) for n in norms] + [
        (layer, "rate", layer.rate) for layer in rates]
    for layer, attribute, _ in saved:
        setattr(layer, attribute, 0.0)
    try:
        built(x, training=True)
    finally:
        for layer, attribute, value in saved:
            setattr(layer, attribute, value)
    for norm in norms:
        # A channel nearly constant over the batch (EfficientNet's late 1x1
        # maps) would divide by sqrt(epsilon): outputs in the thousands that
        # float32 rounding alone (folding, a runtime's own order of sums) moves
        # by more than the tolerance. A floor keeps the model well conditioned.
        variance = keras.ops.convert_to_numpy(norm.moving_variance)
        norm.moving_variance.assign(np.maximum(variance, 0.01 * variance.mean()))
    moved = [not np.allclose(keras.ops.convert_to_numpy(n.moving_variance), b)
             for n, b in zip(norms, before)]
    assert all(moved), "some batch norms kept their initial statistics"
    return built


def _layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def input_shape(model):
    return tuple(int(d) for d in model.inputs[0].shape[1:])


def inputs(model):
    """A batch of 1 and a batch of 3 for `model`: both run through one file."""
    rng = np.random.default_rng(2)
    shape = input_shape(model)
    return {f"batch{n}": rng.normal(size=(n,) + shape).astype("float32") for n in (1, 3)}


def predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), np.float64)


def assert_close(actual, expected, rtol=RTOL):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.max(np.abs(expected))
    # The outputs vary far beyond the tolerance (from feature to feature and
    # from image to image): the comparison sees the weights and the input.
    assert np.ptp(expected) > 100 * rtol * scale
    if len(expected) > 1:
        assert np.ptp(expected, axis=0).max() > 100 * rtol * scale
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)
