"""MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov and Chen, 2018), as torchvision's `mobilenetv2.py`.

"MobileNetV2: Inverted Residuals and Linear Bottlenecks". A 3x3/2 stem
convolution to 32 channels (`features_0`), 17 inverted residual blocks
(`features_1`..`features_17`: a 1x1 expansion by t, a 3x3 depthwise
convolution, a linear 1x1 projection; the input added back where the shape is
kept), a 1x1 convolution to 1280 (`features_18`), global average pooling,
dropout (`classifier_0`) and the dense layer (`classifier_1`). Every
convolution is followed by batch norm (torch's eps 1e-5) and, except the
projections, ReLU6. Channel counts are scaled by `width_mult` and rounded to
multiples of 8 (`_make_divisible`); the last convolution never narrows below
1280. Stride-2 convolutions pad 1 on every side, as torch does.

Input: 224x224 RGB with torchvision's ImageNet normalisation; the head pools
globally, so any size from 32x32 works, including (None, None, 3).

As the paper's Table 2, whose last 1x1 convolution on the pooled map is the
dense layer here (the same weights). `keras.applications.MobileNetV2` has the
same layers and trainable parameters (3,504,872) but pads stride-2
convolutions on the bottom/right only at even sizes (TensorFlow's "same") and
uses batch norm eps 1e-3: with the same weights it computes something else.

`init="torchvision"` (the default) draws the weights as torchvision does:
convolutions He normal (fan-out, torch's fans for the depthwise ones), the
dense layer N(0, 0.01) with a zero bias; `init="keras"`: Keras's defaults.
"""

__all__ = ["mobilenet_v2"]

import functools

from kcnn.models import _common
from kcnn.models.blocks import (conv_norm_activation, inverted_residual,
                                make_divisible)
from kcnn.registry import register

# As keras.applications': preprocess_input(x, data_format=None, weights="imagenet").
preprocess_input = _common.family_preprocess_input(__all__)

# (expansion t, output channels c, blocks n, first stride s): the paper's
# Table 2, as torchvision's `inverted_residual_setting`.
_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280

# Total stride 32: 32 is the smallest input that leaves a 1x1 map.
_MIN_SIZE = 32


@register
def mobilenet_v2(include_top=True, weights=None, input_tensor=None,
                 input_shape=None, pooling=None, classes=1000,
                 classifier_activation="softmax", dropout=0.2, width_mult=1.0,
                 init="torchvision", name="mobilenet_v2"):
    """MobileNetV2 with torchvision's layout.

    3,504,872 parameters with 1000 classes (width 1.0). Input 224x224 RGB;
    any size from 32x32, including (None, None, 3). See the module docstring.

    Args:
        dropout: the dropout rate before the classifier.
        width_mult: the width multiplier (alpha in the paper), > 0.
        init: "torchvision" (see the module docstring) or "keras".
        Other arguments as in `keras.applications`.
    """
    args = _common.arguments("mobilenet_v2", "mobilenet_v2", locals())
    _common.check_rate(dropout, "dropout", name)
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(
            f"width_mult must be a positive number for {name}; received "
            f"width_mult={width_mult!r}."
        )
    _common.check_weights_argument(args, "width_mult", width_mult, 1.0)
    img_input, hwc = _common.build_input(args, default_size=224, min_size=_MIN_SIZE,
                                         fixed_size_required=False)
    return _common.family_model(
        args, img_input, hwc, features=functools.partial(_features, width_mult=width_mult),
        head=_common.pooled_head(args, dropout=dropout, dropout_name="classifier_0",
                                 dense_name="classifier_1"),
        preprocessing=_common.imagenet_preprocessing())


def _features(x, width_mult):
    channels = make_divisible(_STEM_CHANNELS * width_mult)
    x = conv_norm_activation(x, channels, 3, strides=2,
                             activation="relu6", name="features_0")
    index = 1
    for t, c, n, s in _SETTING:
        filters = make_divisible(c * width_mult)
        for i in range(n):
            x = inverted_residual(
                x, filters, expanded_channels=int(round(channels * t)),
                strides=s if i == 0 else 1, activation="relu6",
                name=f"features_{index}", body="conv", split_projection=True)
            channels = filters
            index += 1
    return conv_norm_activation(
        x, make_divisible(_LAST_CHANNELS * max(1.0, width_mult)), 1,
        activation="relu6", name=f"features_{index}")
