"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), in two layouts.

"ImageNet Classification with Deep Convolutional Neural Networks" (NIPS 2012):
five convolutional layers, three of them followed by overlapping 3x3/2 max
pooling, then three fully connected layers, with ReLU throughout and dropout on
the two hidden dense layers.

- variant="torchvision" (the default) is torchvision's `AlexNet`, which follows
  the single-tower network of Krizhevsky's "One weird trick for parallelizing
  convolutional neural networks" (2014): layers named as its module paths
  (`features_0` ... `features_12`, `avgpool`, `classifier_0` ...
  `classifier_6`), so a torchvision state dict converts by name.
- variant="paper" is the 2012 network itself: two-tower grouped convolutions
  and local response normalization, with layers named in the paper's terms
  (`conv1`, `relu1`, `lrn1`, `pool1`, ..., `fc6`, `fc7`, `fc8`).

Weight layout note: Keras flattens the 6x6x256 map in (h, w, c) order in both
data formats, torch in (c, h, w) order, so row h * 1536 + w * 256 + c of the
first dense layer's kernel is torch's column c * 36 + h * 6 + w.
"""

__all__ = ["alexnet"]

import functools

import keras

from kcnn.layers import (AdaptiveAveragePooling2D, GroupedConv2D, LocalResponseNormalization,
                         MaxPooling2D)
from kcnn.models import _common, initializers
from kcnn.models.blocks import torchvision_features
from kcnn.registry import register

# As keras.applications': preprocess_input(x, data_format=None, weights="imagenet").
preprocess_input = _common.family_preprocess_input(__all__)

_VARIANTS = ("torchvision", "paper")

# Default and smallest inputs: the smallest keeps a 1x1 map after the third pool.
_DEFAULT_SIZE = {"torchvision": 224, "paper": 227}
_MIN_SIZE = {"torchvision": 63, "paper": 67}

# torchvision's `features`: (filters, kernel, stride, padding) for a convolution
# and its ReLU, "M" for MaxPool2d(3, 2); layers are named by Sequential index.
_TORCHVISION_FEATURES = (
    (64, 11, 4, 2), "M",
    (192, 5, 1, 2), "M",
    (384, 3, 1, 1),
    (256, 3, 1, 1),
    (256, 3, 1, 1), "M",
)

# The paper's convolutions (Section 3.5, Figure 2), each followed by a ReLU:
# (filters, kernel, stride, padding, split across the two GPUs, LRN, max pool).
# conv3 is the one convolution that reads both GPUs' maps.
_PAPER_CONVS = (
    (96, 11, 4, "valid", False, True, True),
    (256, 5, 1, "same", True, True, True),
    (384, 3, 1, "same", False, False, False),
    (384, 3, 1, "same", True, False, False),
    (256, 3, 1, "same", True, False, True),
)
# "We initialized the neuron biases in the second, fourth, and fifth
# convolutional layers, as well as in the fully-connected hidden layers, with
# the constant 1" (Section 5); the other biases are 0.
_PAPER_UNIT_BIASES = ("conv2", "conv4", "conv5", "fc6", "fc7")
# Group counts that divide the channels of every grouped layer (96, 256, 384).
_PAPER_GROUPS = (1, 2, 4, 8, 16, 32)

# The paper's LRN: k=2, n=5, alpha=1e-4, beta=0.75 (Section 3.3).
_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)

# Both heads pool adaptively to the 6x6 map the classifier was sized for.
_HEAD_MAP = 6
_HIDDEN = 4096


@register
def alexnet(include_top=True, weights=None, input_tensor=None, input_shape=None,
            pooling=None, classes=1000, classifier_activation="softmax",
            dropout=0.5, variant="torchvision", groups=None, init="keras",
            name="alexnet"):
    """AlexNet: torchvision's layout (default) or the 2012 paper's.

    variant="torchvision": torchvision's `AlexNet`, 61,100,840 parameters with
    1000 classes. Convolutions 64 11x11/4 (padding 2), 192 5x5 (padding 2),
    384, 256, 256 3x3 (padding 1), each with a ReLU, max pools 3x3/2 after the
    first, second and fifth; an adaptive average pool to 6x6; then dropout,
    Linear(9216, 4096), ReLU, dropout, Linear(4096, 4096), ReLU,
    Linear(4096, classes). Input 224x224x3 by default, at least 63x63.

    variant="paper": the network of the 2012 paper, 60,965,224 parameters with
    1000 classes and groups=2 (62,378,344 with groups=1). conv1 96 11x11/4
    (valid), ReLU, LRN, max pool 3x3/2; conv2 256 5x5 (padding 2) in two
    groups, ReLU, LRN, max pool; conv3 384 3x3 (padding 1) across both groups;
    conv4 384 3x3 and conv5 256 3x3 in two groups (padding 1), each with a
    ReLU; max pool to 6x6x256; fc6 4096, ReLU, dropout; fc7 4096, ReLU,
    dropout; fc8. The LRN is `kcnn.layers.LocalResponseNormalization(size=5,
    alpha=1e-4, beta=0.75, k=2)` in the paper's order conv -> ReLU -> LRN ->
    pool (Caffe's reference model pools first). Input 227x227x3 by default
    (the paper's "224" does not give its 55x55 maps; 227 does), at least 67x67.
    The groups run as `kcnn.layers.GroupedConv2D`, fast on every backend.

    Where torchvision departs from the paper: 64 first-layer kernels instead
    of 96, and 192, 384, 256, 256 instead of 256, 384, 384, 256 after it; no
    LRN; no groups (a single tower); a 224x224 input with padding 2 in the
    first convolution (55x55 maps, like the paper's 227 unpadded); an adaptive
    average pool to 6x6 before the classifier (the identity at 224); dropout on
    the inputs of the two hidden dense layers instead of on their outputs.

    In both layouts, include_top=True keeps the reference head at every input
    size: an adaptive average pool to 6x6 (always present; the identity at the
    default size) feeds the 9216-wide first dense layer. The head flattens, so
    it needs a fixed height and width; without the top, (None, None, 3) works.

    Args:
        dropout: the rate of both dropout layers of the classifier.
        variant: "torchvision" or "paper".
        groups: variant="paper" only: groups of conv2, conv4 and conv5, 2 by
            default (the paper's two GPUs), 1 for full connections; any of 1,
            2, 4, 8, 16, 32.
        init: "keras" (Keras's default initializers), "torchvision" (torch's
            layer defaults, as torchvision's AlexNet sets none:
            U(+-1/sqrt(fan_in)) for weights and biases) or, with
            variant="paper", "paper": every weight drawn from N(0, 0.01),
            biases 1 in conv2, conv4, conv5, fc6 and fc7 and 0 elsewhere.
        Other arguments as in `keras.applications`.
    """
    args = _common.arguments("alexnet", "alexnet", locals())
    groups = _check_family_arguments(variant, groups, init, dropout, name)
    _common.check_weights_argument(args, "variant", variant, "torchvision")
    img_input, hwc = _common.build_input(
        args, default_size=_DEFAULT_SIZE[variant], min_size=_MIN_SIZE[variant],
        fixed_size_required=include_top)
    if variant == "torchvision":
        features = functools.partial(torchvision_features, rows=_TORCHVISION_FEATURES,
                                     pool_size=3)
        head = _torchvision_head
    else:
        features = functools.partial(_paper_features, groups=groups, init=init)
        head = functools.partial(_paper_head, init=init)
    return _common.family_model(
        args, img_input, hwc, features=features,
        head=functools.partial(_head, args=args, dropout=dropout, head=head),
        preprocessing=_preprocessing(hwc[0], _DEFAULT_SIZE[variant]))


def _check_family_arguments(variant, groups, init, dropout, name):
    """Check AlexNet's own arguments; return the group count to build with.

    `init` has passed `_common.arguments`' check.
    """
    if variant not in _VARIANTS:
        raise ValueError(
            f"variant must be one of {', '.join(map(repr, _VARIANTS))} for {name}; "
            f"received variant={variant!r}."
        )
    _common.check_rate(dropout, "dropout", name)
    if variant == "torchvision":
        if init == "paper":
            raise ValueError(
                f"init='paper' is the initialisation of variant='paper' (its biases "
                f"of 1 are set by the paper's layer names) for {name}; received "
                f"init='paper' with variant='torchvision'. Use variant='paper', or "
                f"init='keras' or 'torchvision'."
            )
        if groups not in (None, 1):
            raise ValueError(
                f"groups applies to variant='paper' only (torchvision's AlexNet has "
                f"no grouped convolutions) for {name}; received groups={groups!r} "
                f"with variant='torchvision'."
            )
        return 1
    if groups is None:
        return 2
    if not isinstance(groups, int) or isinstance(groups, bool) or groups not in _PAPER_GROUPS:
        raise ValueError(
            f"groups must be one of {', '.join(map(str, _PAPER_GROUPS))} for {name} "
            f"with variant='paper' (2: the paper's two GPUs; 1: every filter sees "
            f"every channel); received groups={groups!r}."
        )
    return groups


def _preprocessing(size, default_size):
    """ImageNet normalisation; resize the shorter side to 256 for the default crop.

    Other crops keep torchvision's 224/256 ratio.
    """
    size = size or default_size
    resize = 256 if size == default_size else round(size * 256 / 224)
    return _common.imagenet_preprocessing(size=size, resize=resize)


def _head(x, args, dropout, head):
    """Both layouts' heads: an adaptive pool to the 6x6 map, flatten, `head`."""
    x = AdaptiveAveragePooling2D(_HEAD_MAP, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return head(x, args.classes, args.classifier_activation, dropout)


def _torchvision_head(x, classes, classifier_activation, dropout):
    x = keras.layers.Dropout(dropout, name="classifier_0")(x)
    x = keras.layers.Dense(_HIDDEN, name="classifier_1",
                           **initializers.dense(x.shape[-1], _HIDDEN))(x)
    x = keras.layers.ReLU(name="classifier_2")(x)
    x = keras.layers.Dropout(dropout, name="classifier_3")(x)
    x = keras.layers.Dense(_HIDDEN, name="classifier_4",
                           **initializers.dense(x.shape[-1], _HIDDEN))(x)
    x = keras.layers.ReLU(name="classifier_5")(x)
    return _common.classifier(x, classes, classifier_activation, name="classifier_6")


def _paper_features(x, groups, init):
    for i, (filters, kernel, stride, padding, split, lrn, pool) in enumerate(
            _PAPER_CONVS, start=1):
        name = f"conv{i}"
        layer = GroupedConv2D if split else keras.layers.Conv2D
        layer_groups = groups if split else 1
        init_args = initializers.conv(x.shape[_common.channel_axis()], filters,
                                      kernel, layer_groups)
        x = layer(filters, kernel, strides=stride, padding=padding,
                  groups=layer_groups, name=name,
                  **_paper_biases(name, init, init_args))(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        if lrn:
            x = LocalResponseNormalization(**_LRN, name=f"lrn{i}")(x)
        if pool:
            x = MaxPooling2D(3, 2, name=f"pool{i}")(x)
    return x


def _paper_head(x, classes, classifier_activation, dropout, init):
    for name in ("fc6", "fc7"):
        init_args = initializers.dense(x.shape[-1], _HIDDEN)
        x = keras.layers.Dense(_HIDDEN, name=name,
                               **_paper_biases(name, init, init_args))(x)
        x = keras.layers.ReLU(name=f"relu{name[2:]}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{name[2:]}")(x)
    return _common.classifier(x, classes, classifier_activation, name="fc8")


def _paper_biases(name, init, init_args):
    """`init_args` with the paper's biases of 1 in its layer `name`, under init="paper"."""
    if init == "paper" and name in _PAPER_UNIT_BIASES:
        return {**init_args, "bias_initializer": "ones"}
    return init_args
