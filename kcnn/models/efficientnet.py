"""EfficientNet B0-B7 (Tan and Le, 2019), laid out exactly as torchvision's `efficientnet.py`.

"EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks".
A 3x3/2 stem convolution (`features_0`), seven stages of MBConv blocks
(`features_1`..`features_7`, rows of the table below), a 1x1 convolution to
four times the last stage's channels (`features_8`), global average pooling
(`avgpool`), dropout (`classifier_0`) and the dense layer (`classifier_1`).
An MBConv block (`features_{stage}_{i}_block_*`) is a 1x1 expansion, a
depthwise k x k convolution, squeeze-excitation to a quarter of the block's
input channels, and a linear 1x1 projection; where the shape is kept, the
input is added back after stochastic depth, whose rate grows linearly with the
block's index: stochastic_depth_prob * index / blocks (0 for the first).
Activations are SiLU. B1-B7 scale the B0 table: channels by `width_mult`
(rounded to multiples of 8 as torchvision's `_make_divisible`), blocks per
stage by `depth_mult` (rounded up). Stride-2 depthwise convolutions pad k // 2
on every side, as torch does.

Input: each variant's ImageNet crop (B0 224 ... B7 600), RGB with ImageNet
mean/std after a bicubic resize, as torchvision's weights; the head pools
globally, so any size from 32x32 works, including (None, None, 3).

Departures from the paper's TensorFlow implementation, all torchvision's:
- batch norm eps 1e-5 and torch's momentum 0.1 (Keras 0.9) in B0-B4, whose
  weights torchvision ported from timm; eps 1e-3 and momentum 0.01 (Keras
  0.99) in B5-B7, ported from EfficientNet-PyTorch. The original uses eps 1e-3
  and Keras momentum 0.99 everywhere;
- torch's symmetric padding k // 2, where TensorFlow's "same" pads more on
  the bottom/right at stride 2.
`keras.applications.EfficientNetB0` has the same trainable parameters
(5,288,548) but rescales and normalises inside the model, pads stride-2
convolutions bottom/right at even sizes and uses eps 1e-3: with the same
weights it computes something else.

`init="torchvision"` (the default) draws the weights as torchvision does:
convolutions He normal (fan-out, torch's fans for the depthwise ones), the
dense layer uniform in +-1/sqrt(classes) with a zero bias; `init="keras"`:
Keras's defaults.
"""

__all__ = ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
           "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"]

import functools
import math

from kcnn.models import _common
from kcnn.models.blocks import (conv_norm_activation, inverted_residual,
                                make_divisible)
from kcnn.registry import register

# As keras.applications': preprocess_input(x, data_format=None, weights="imagenet").
preprocess_input = _common.family_preprocess_input(__all__)

# (expand_ratio, kernel, stride, in_channels, out_channels, layers): B0, the
# paper's Table 1, as torchvision's `_efficientnet_conf`.
_ROWS = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

# variant: (width_mult, depth_mult, crop, resize): torchvision's builders and
# the evaluation transforms of its IMAGENET1K_V1 weights.
_VARIANTS = {
    0: (1.0, 1.0, 224, 256),
    1: (1.0, 1.1, 240, 256),
    2: (1.1, 1.2, 288, 288),
    3: (1.2, 1.4, 300, 320),
    4: (1.4, 1.8, 380, 384),
    5: (1.6, 2.2, 456, 456),
    6: (1.8, 2.6, 528, 528),
    7: (2.0, 3.1, 600, 600),
}

# Batch norm (eps, Keras momentum): torch's defaults up to B4, the ported
# TensorFlow values from B5 (torchvision's `norm_layer` per builder).
_BN_TORCH = (1e-5, 0.9)
_BN_PORTED = (1e-3, 0.99)

# Total stride 32: 32 is the smallest input that leaves a 1x1 map.
_MIN_SIZE = 32


def _efficientnet(variant, *, dropout, stochastic_depth_prob, **kwargs):
    """EfficientNet-B`variant`; the rest: the public builder's arguments."""
    args = _common.arguments("efficientnet", f"efficientnet_b{variant}", kwargs)
    _common.check_rate(dropout, "dropout", args.name)
    _common.check_rate(stochastic_depth_prob, "stochastic_depth_prob", args.name,
                       upper_inclusive=True)
    width_mult, depth_mult, crop, resize = _VARIANTS[variant]
    bn_epsilon, bn_momentum = _BN_TORCH if variant <= 4 else _BN_PORTED
    img_input, hwc = _common.build_input(args, default_size=crop, min_size=_MIN_SIZE,
                                         fixed_size_required=False)
    return _common.family_model(
        args, img_input, hwc,
        features=functools.partial(
            _features, width_mult=width_mult, depth_mult=depth_mult,
            stochastic_depth_prob=stochastic_depth_prob,
            bn=dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)),
        head=_common.pooled_head(args, dropout=dropout, dropout_name="classifier_0",
                                 dense_name="classifier_1"),
        preprocessing=_common.preprocessing(
            size=crop, resize=resize, mean=_common.IMAGENET_MEAN,
            std=_common.IMAGENET_STD, interpolation="bicubic"))


def _features(x, width_mult, depth_mult, stochastic_depth_prob, bn):
    rows = [(expand, kernel, stride, make_divisible(cin * width_mult),
             make_divisible(cout * width_mult), math.ceil(layers * depth_mult))
            for expand, kernel, stride, cin, cout, layers in _ROWS]
    total_blocks = sum(row[-1] for row in rows)
    x = conv_norm_activation(x, rows[0][3], 3, strides=2,
                             activation="silu", name="features_0", **bn)
    block_id = 0
    for stage, (expand, kernel, stride, cin, cout, layers) in enumerate(rows, start=1):
        for i in range(layers):
            in_channels = cin if i == 0 else cout
            x = inverted_residual(
                x, cout, expanded_channels=make_divisible(in_channels * expand),
                kernel_size=kernel, strides=stride if i == 0 else 1,
                activation="silu", squeeze_channels=max(1, in_channels // 4),
                drop_rate=stochastic_depth_prob * block_id / total_blocks,
                name=f"features_{stage}_{i}", body="block", **bn)
            block_id += 1
    return conv_norm_activation(x, 4 * rows[-1][4], 1, activation="silu",
                                name=f"features_{len(rows) + 1}", **bn)


@register
def efficientnet_b0(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.2,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b0"):
    """EfficientNet-B0: width x1.0, depth x1.0 of B0.

    5,288,548 parameters with 1000 classes. Input 224x224 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(0, **locals())


@register
def efficientnet_b1(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.2,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b1"):
    """EfficientNet-B1: width x1.0, depth x1.1 of B0.

    7,794,184 parameters with 1000 classes. Input 240x240 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(1, **locals())


@register
def efficientnet_b2(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.3,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b2"):
    """EfficientNet-B2: width x1.1, depth x1.2 of B0.

    9,109,994 parameters with 1000 classes. Input 288x288 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(2, **locals())


@register
def efficientnet_b3(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.3,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b3"):
    """EfficientNet-B3: width x1.2, depth x1.4 of B0.

    12,233,232 parameters with 1000 classes. Input 300x300 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(3, **locals())


@register
def efficientnet_b4(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.4,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b4"):
    """EfficientNet-B4: width x1.4, depth x1.8 of B0.

    19,341,616 parameters with 1000 classes. Input 380x380 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(4, **locals())


@register
def efficientnet_b5(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.4,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b5"):
    """EfficientNet-B5: width x1.6, depth x2.2 of B0.

    30,389,784 parameters with 1000 classes. Input 456x456 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(5, **locals())


@register
def efficientnet_b6(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.5,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b6"):
    """EfficientNet-B6: width x1.8, depth x2.6 of B0.

    43,040,704 parameters with 1000 classes. Input 528x528 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(6, **locals())


@register
def efficientnet_b7(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax", dropout=0.5,
                    stochastic_depth_prob=0.2, init="torchvision",
                    name="efficientnet_b7"):
    """EfficientNet-B7: width x2.0, depth x3.1 of B0.

    66,347,960 parameters with 1000 classes. Input 600x600 RGB; any size
    from 32x32, including (None, None, 3). `dropout` before the classifier;
    `stochastic_depth_prob` for the last block (block i of n drops its
    residual branch with rate stochastic_depth_prob * i / n in training).
    `init`: "torchvision" or "keras". See the module docstring.
    """
    return _efficientnet(7, **locals())
