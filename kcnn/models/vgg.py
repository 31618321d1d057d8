"""VGG (Simonyan and Zisserman, 2014), laid out exactly as torchvision's `vgg.py`.

"Very Deep Convolutional Networks for Large-Scale Image Recognition": stacks of
3x3 convolutions (padding 1) and ReLU in five stages, each closed by a 2x2 max
pool, then a classifier Linear(25088, 4096)-ReLU-Dropout-Linear(4096, 4096)-
ReLU-Dropout-Linear(4096, classes). The four depths are rows of one table
(torchvision's `cfgs`: output channels, "M" for a pool) turned into layers by
one loop. Layers are named as torchvision's Sequential indices (`features_<i>`,
`classifier_<i>`), so a torchvision state dict converts by name.

Input: 224x224 RGB with torchvision's ImageNet normalisation. The classifier
flattens, so include_top=True needs a fixed height and width (at least 32);
without the top any size from 32 works.

Where torchvision departs from the paper: an adaptive average pool to 7x7
before the classifier (the identity at 224x224) instead of the paper's fully
convolutional evaluation at other scales; the `_bn` variants add batch norm
(Ioffe and Szegedy, 2015, after the paper; eps 1e-5) after each convolution
and keep the convolution's bias; no configuration A-LRN. `init="torchvision"`
(the default) draws the weights as torchvision does: convolutions He normal
(fan_out), dense layers N(0, 0.01), zero biases; `init="keras"`: Keras's
defaults.

Weight layout note: Keras flattens the 7x7x512 map in (h, w, c) order in both
data formats (Flatten moves channels last first), torch in (c, h, w) order, so
row h * 3584 + w * 512 + c of classifier_0's kernel is torch's column
c * 49 + h * 7 + w.
"""

__all__ = [
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
    "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
]

import functools

import keras

from kcnn.layers import AdaptiveAveragePooling2D
from kcnn.models import _common, initializers
from kcnn.models.blocks import torchvision_features
from kcnn.registry import register

# As keras.applications': preprocess_input(x, data_format=None, weights="imagenet").
preprocess_input = _common.family_preprocess_input(__all__)

# The paper's configurations A, B, D and E (Table 1): the output channels of
# 3x3 convolutions (padding 1), "M" for a 2x2 max pool.
_CFGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512,
         "M", 512, 512, 512, 512, "M"),
}

# Five 2x2 pools: 32 is the smallest input that leaves a 1x1 map.
_MIN_SIZE = 32


def _vgg(depth, use_bn, *, dropout, **kwargs):
    """VGG of `depth`, with batch norm if `use_bn`; the rest: the public builder's arguments."""
    args = _common.arguments("vgg", f"vgg{depth}{'_bn' if use_bn else ''}", kwargs)
    _common.check_rate(dropout, "dropout", args.name)
    img_input, hwc = _common.build_input(args, default_size=224, min_size=_MIN_SIZE,
                                         fixed_size_required=args.include_top)
    return _common.family_model(
        args, img_input, hwc,
        features=functools.partial(
            torchvision_features, pool_size=2, use_bn=use_bn,
            rows=[v if v == "M" else (v, 3, 1, 1) for v in _CFGS[depth]]),
        head=functools.partial(_classifier, args=args, dropout=dropout),
        preprocessing=_common.imagenet_preprocessing())


def _classifier(x, args, dropout):
    # The identity at 224x224; other sizes keep the 25088-wide classifier.
    x = AdaptiveAveragePooling2D((7, 7), name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (0, 3):
        x = keras.layers.Dense(4096, name=f"classifier_{i}",
                               **initializers.dense(x.shape[-1], 4096))(x)
        x = keras.layers.ReLU(name=f"classifier_{i + 1}")(x)
        x = keras.layers.Dropout(dropout, name=f"classifier_{i + 2}")(x)
    return _common.classifier(x, args.classes, args.classifier_activation,
                              name="classifier_6")


@register
def vgg11(include_top=True, weights=None, input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax",
          dropout=0.5, init="torchvision", name="vgg11"):
    """VGG-11 (configuration A).

    8 convolutions and 3 dense layers; 132,863,336 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(11, False, **locals())


@register
def vgg11_bn(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax",
             dropout=0.5, init="torchvision", name="vgg11_bn"):
    """VGG-11 (configuration A) with batch norm after each convolution.

    8 convolutions and 3 dense layers; 132,868,840 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(11, True, **locals())


@register
def vgg13(include_top=True, weights=None, input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax",
          dropout=0.5, init="torchvision", name="vgg13"):
    """VGG-13 (configuration B).

    10 convolutions and 3 dense layers; 133,047,848 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(13, False, **locals())


@register
def vgg13_bn(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax",
             dropout=0.5, init="torchvision", name="vgg13_bn"):
    """VGG-13 (configuration B) with batch norm after each convolution.

    10 convolutions and 3 dense layers; 133,053,736 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(13, True, **locals())


@register
def vgg16(include_top=True, weights=None, input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax",
          dropout=0.5, init="torchvision", name="vgg16"):
    """VGG-16 (configuration D).

    13 convolutions and 3 dense layers; 138,357,544 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(16, False, **locals())


@register
def vgg16_bn(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax",
             dropout=0.5, init="torchvision", name="vgg16_bn"):
    """VGG-16 (configuration D) with batch norm after each convolution.

    13 convolutions and 3 dense layers; 138,365,992 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(16, True, **locals())


@register
def vgg19(include_top=True, weights=None, input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax",
          dropout=0.5, init="torchvision", name="vgg19"):
    """VGG-19 (configuration E).

    16 convolutions and 3 dense layers; 143,667,240 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(19, False, **locals())


@register
def vgg19_bn(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax",
             dropout=0.5, init="torchvision", name="vgg19_bn"):
    """VGG-19 (configuration E) with batch norm after each convolution.

    16 convolutions and 3 dense layers; 143,678,248 parameters with 1000
    classes. Input 224x224 RGB (fixed size from 32x32 with the top, any size
    from 32x32 without). `init`: "torchvision" (see the module docstring)
    or "keras". See the module docstring for the layout.
    """
    return _vgg(19, True, **locals())
