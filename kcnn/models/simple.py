"""The BatchNorm CNN of the MNIST tutorials."""

__all__ = ["simple_cnn"]

import functools

import keras

from kcnn.layers import AdaptiveAveragePooling2D, MaxPooling2D
from kcnn.models import _common, initializers
from kcnn.models.blocks import batch_norm, conv2d
from kcnn.registry import register

_FILTERS = (32, 64, 128)


@register
def simple_cnn(include_top=True, weights=None, input_tensor=None,
               input_shape=None, pooling=None, classes=10,
               classifier_activation="softmax", dropout=(0.25, 0.5),
               init="keras", name="simple_cnn"):
    """The small BatchNorm CNN people train on MNIST.

    Three blocks of 3x3 convolution ("same"), batch norm, ReLU and 2x2 max
    pooling with 32, 64 and 128 filters, dropout 0.25, dense 256 with ReLU,
    dropout 0.5 and the classifier. At the reference input, 28x28x1 with 10
    classes, it has 390,858 trainable parameters. Inputs from 8x8 up; other sizes
    are pooled adaptively to the reference 3x3 map so the head keeps its shape.

    Args:
        dropout: the two dropout rates, after the convolutions and after the
            hidden dense layer.
        init: "keras" (Keras's defaults) or "torchvision" (torch's layer
            defaults, what the PyTorch version of this network gets:
            U(+-1/sqrt(fan_in)) for weights and biases).
        Other arguments as in `keras.applications`.
    """
    args = _common.arguments("simple_cnn", "simple_cnn", locals())
    dropout = _dropout_pair(dropout)
    img_input, hwc = _common.build_input(args, default_size=28, default_channels=1,
                                         min_size=8, fixed_size_required=include_top)
    return _common.family_model(
        args, img_input, hwc, features=_features,
        head=functools.partial(_head, args=args, dropout=dropout,
                               pool=hwc[:2] != (28, 28)),
        preprocessing=_common.preprocessing(size=hwc[0], channels=hwc[2]))


def _features(x):
    for i, filters in enumerate(_FILTERS, start=1):
        x = conv2d(x, filters, 3, padding=1, name=f"conv{i}")
        x = batch_norm(x, f"bn{i}")
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = MaxPooling2D(2, name=f"pool{i}")(x)
    return x


def _head(x, args, dropout, pool):
    """Dropout, dense 256, dropout, the classifier; `pool`: other input sizes
    pool adaptively to the reference 3x3 map."""
    conv_dropout, dense_dropout = dropout
    if pool:
        x = AdaptiveAveragePooling2D(3, name="adaptive_pool")(x)
    x = keras.layers.Dropout(conv_dropout, name="dropout1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(256, activation="relu", name="fc1",
                           **initializers.dense(x.shape[-1], 256))(x)
    x = keras.layers.Dropout(dense_dropout, name="dropout2")(x)
    return _common.classifier(x, args.classes, args.classifier_activation, name="fc2")


def _dropout_pair(dropout):
    pair = (dropout, dropout) if isinstance(dropout, (int, float)) else tuple(dropout)
    if len(pair) != 2 or not all(isinstance(r, (int, float)) and 0 <= r < 1 for r in pair):
        raise ValueError(
            f"dropout must be a rate in [0, 1) or a pair of such rates; "
            f"received dropout={dropout!r}."
        )
    return pair
