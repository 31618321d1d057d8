"""ResNet v1.5 (He, Zhang, Ren and Sun, 2015), exactly as torchvision's `resnet.py`.

"Deep Residual Learning for Image Recognition". A 7x7/2 stem convolution
(padding 3, no bias), batch norm, ReLU and a 3x3/2 max pool (padding 1); four
stages `layer1`..`layer4` of residual blocks with 64, 128, 256 and 512 base
channels, the last three starting with stride 2; global average pooling and
the dense layer `fc`. ResNet-18/34 use the basic block (two 3x3
convolutions), ResNet-50/101/152 the bottleneck (1x1, 3x3, 1x1 with 4x
expansion). A block whose shape changes gets a projection shortcut
`downsample` (1x1 convolution with the block's stride, and batch norm).
Layers are named as torchvision's module paths (`layer1_0_conv1`,
`layer1_0_downsample_0`), so a torchvision state dict converts by name.

Input: 224x224 RGB with torchvision's ImageNet normalisation; the head pools
globally, so any size from 32x32 works, including (None, None, 3).

This is "v1.5", torchvision's version. It departs from the paper in two ways:
- the bottleneck strides on its 3x3 convolution (`conv2`); the paper strides
  on the first 1x1 convolution (v1), which skips three quarters of the input.
  v1.5 is about 0.5% more accurate (top-1, NVIDIA's measurement) and about
  5% slower;
- shortcuts are projections wherever the shape changes (the paper's option
  B) in every depth; the paper's ResNet-18/34 results use zero-padded identity
  shortcuts (option A).
`keras.applications.ResNet50` is v1 instead: stride on the first 1x1
convolution, biases on every convolution although batch norm follows, batch
norm eps 1.001e-5, and 25,636,712 parameters (trainable and not) against
25,557,032 + 53,120 here. Its weights do not fit these models.

Batch norm uses torch's eps 1e-5. `init="torchvision"` (the default) draws the
weights as torchvision does: convolutions He normal (fan_out; no
`zero_init_residual`, torchvision's default), the dense layer torch's default
U(+-1/sqrt(fan_in)) for weights and bias; `init="keras"`: Keras's defaults.
"""

__all__ = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]

import functools

import keras

from kcnn.models import _common
from kcnn.models.blocks import conv_bn_act, max_pool
from kcnn.registry import register

# As keras.applications': preprocess_input(x, data_format=None, weights="imagenet").
preprocess_input = _common.family_preprocess_input(__all__)

# Base channels of layer1..layer4 (the bottleneck outputs 4x as many).
_WIDTHS = (64, 128, 256, 512)

# Total stride 32: 32 is the smallest input that leaves a 1x1 map.
_MIN_SIZE = 32


def _conv_bn(x, filters, kernel_size, *, strides=1, name, conv, bn, relu=None):
    """Bias-free convolution (torch padding k // 2), batch norm, ReLU if `relu`.

    The layers are `{name}_{conv}`, `{name}_{bn}` and `{name}_{relu}`.
    """
    return conv_bn_act(
        x, filters, kernel_size, strides=strides, padding=kernel_size // 2,
        activation="relu" if relu else None, conv_name=f"{name}_{conv}",
        bn_name=f"{name}_{bn}", act_name=relu and f"{name}_{relu}")


def _basic_block(x, planes, strides, name):
    """torchvision's `BasicBlock`: 3x3 (stride), 3x3, plus the shortcut."""
    shortcut = _shortcut(x, planes, strides, name)
    x = _conv_bn(x, planes, 3, strides=strides, name=name, conv="conv1",
                 bn="bn1", relu="relu1")
    x = _conv_bn(x, planes, 3, name=name, conv="conv2", bn="bn2")
    return _merge(x, shortcut, name)


def _bottleneck(x, planes, strides, name):
    """torchvision's `Bottleneck` (v1.5): 1x1, 3x3 (stride), 1x1 to 4 * planes."""
    shortcut = _shortcut(x, planes * 4, strides, name)
    x = _conv_bn(x, planes, 1, name=name, conv="conv1", bn="bn1", relu="relu1")
    x = _conv_bn(x, planes, 3, strides=strides, name=name, conv="conv2",
                 bn="bn2", relu="relu2")
    x = _conv_bn(x, planes * 4, 1, name=name, conv="conv3", bn="bn3")
    return _merge(x, shortcut, name)


def _shortcut(x, filters, strides, name):
    """The identity, or torchvision's `downsample` where the shape changes."""
    if strides == 1 and x.shape[_common.channel_axis()] == filters:
        return x
    return _conv_bn(x, filters, 1, strides=strides, name=name,
                    conv="downsample_0", bn="downsample_1")


def _merge(x, shortcut, name):
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


# depth: (block, blocks in layer1..layer4), as torchvision's builders.
_STAGES = {
    18: (_basic_block, (2, 2, 2, 2)),
    34: (_basic_block, (3, 4, 6, 3)),
    50: (_bottleneck, (3, 4, 6, 3)),
    101: (_bottleneck, (3, 4, 23, 3)),
    152: (_bottleneck, (3, 8, 36, 3)),
}


def _resnet(depth, **kwargs):
    """The ResNet of `depth`; `kwargs`: the public builder's arguments."""
    args = _common.arguments("resnet", f"resnet{depth}", kwargs)
    img_input, hwc = _common.build_input(args, default_size=224, min_size=_MIN_SIZE,
                                         fixed_size_required=False)
    return _common.family_model(
        args, img_input, hwc, features=functools.partial(_features, depth=depth),
        head=_common.pooled_head(args, dense_name="fc"),
        preprocessing=_common.imagenet_preprocessing())


def _features(x, depth):
    block, stage_blocks = _STAGES[depth]
    x = conv_bn_act(x, 64, 7, strides=2, padding=3, conv_name="conv1",
                    bn_name="bn1", act_name="relu")
    x = max_pool(x, 3, 2, padding=1, name="maxpool")
    for stage, (planes, blocks) in enumerate(zip(_WIDTHS, stage_blocks), start=1):
        for b in range(blocks):
            strides = 2 if stage > 1 and b == 0 else 1
            x = block(x, planes, strides, name=f"layer{stage}_{b}")
    return x


@register
def resnet18(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax",
             init="torchvision", name="resnet18"):
    """ResNet-18 v1.5: basic blocks, stages of 2, 2, 2, 2.

    11,689,512 parameters with 1000 classes. Input 224x224 RGB; any size from
    32x32. See the module docstring for the layout and the departures from the
    paper and `init`.
    """
    return _resnet(18, **locals())


@register
def resnet34(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax",
             init="torchvision", name="resnet34"):
    """ResNet-34 v1.5: basic blocks, stages of 3, 4, 6, 3.

    21,797,672 parameters with 1000 classes. Input 224x224 RGB; any size from
    32x32. See the module docstring for the layout and the departures from the
    paper and `init`.
    """
    return _resnet(34, **locals())


@register
def resnet50(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax",
             init="torchvision", name="resnet50"):
    """ResNet-50 v1.5: bottleneck blocks, stages of 3, 4, 6, 3.

    25,557,032 parameters with 1000 classes. Input 224x224 RGB; any size from
    32x32. Stride on the bottleneck's 3x3 convolution, unlike the paper and
    `keras.applications.ResNet50` (see the module docstring).
    """
    return _resnet(50, **locals())


@register
def resnet101(include_top=True, weights=None, input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax",
              init="torchvision", name="resnet101"):
    """ResNet-101 v1.5: bottleneck blocks, stages of 3, 4, 23, 3.

    44,549,160 parameters with 1000 classes. Input 224x224 RGB; any size from
    32x32. Stride on the bottleneck's 3x3 convolution, unlike the paper (see
    the module docstring).
    """
    return _resnet(101, **locals())


@register
def resnet152(include_top=True, weights=None, input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax",
              init="torchvision", name="resnet152"):
    """ResNet-152 v1.5: bottleneck blocks, stages of 3, 8, 36, 3.

    60,192,808 parameters with 1000 classes. Input 224x224 RGB; any size from
    32x32. Stride on the bottleneck's 3x3 convolution, unlike the paper (see
    the module docstring).
    """
    return _resnet(152, **locals())
