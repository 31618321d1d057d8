"""Blocks shared by the families, written to match torchvision's modules exactly.

Padding follows torch: a `Conv2d(padding=p)` is kcnn's convolution with
`padding=p` (torch's symmetric zero padding, inside the convolution on torch;
`kcnn.layers.conv._TorchPadding`). Keras's "same" equals that only at stride 1
with an odd kernel and p = k // 2 (it pads bottom/right only at stride 2), so
"same" is used there, and p elsewhere. (Models built before kcnn's layers took
p have a `{name}_pad` ZeroPadding2D layer and a "valid" convolution: the same
function and weights, and their files still load.)

Layer names are torchvision's module paths with "_" for "." (dots break the
torch backend), so converting a state dict is a mapping of names.
"""

import keras

from kcnn.layers.conv import Conv2D, DepthwiseConv2D
from kcnn.layers.normalization import BatchNormalization
from kcnn.layers.pooling import MaxPooling2D
from kcnn.layers.regularization import StochasticDepth
from kcnn.models import initializers
from kcnn.models._common import channel_axis

# torch.nn.BatchNorm2d defaults: eps 1e-5, running stats updated with 0.1.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def torch_padding(kernel_size, strides, padding):
    """torch's symmetric `padding` as kcnn's convolutions take it: "same" where it is
    the same thing (stride 1, odd kernel, padding k // 2: Keras's own, and the
    config of models built before), "valid" for none, else `padding` itself."""
    if padding and strides == 1 and kernel_size % 2 == 1 and padding == kernel_size // 2:
        return "same"
    return padding or "valid"


def conv2d(x, filters, kernel_size, *, strides=1, padding=0, groups=1,
           use_bias=True, activation=None, name):
    """torch's `Conv2d(kernel_size, stride, padding, groups, bias)` as Keras layers.

    Initialised by the builder's `init` scheme (`kcnn.models.initializers`).
    `activation` is applied inside the convolution layer (LeNet-5's tanh).
    """
    init = initializers.conv(x.shape[channel_axis()], filters, kernel_size, groups)
    return Conv2D(
        filters, kernel_size, strides=strides,
        padding=torch_padding(kernel_size, strides, padding), groups=groups,
        use_bias=use_bias, activation=activation, name=name, **init,
    )(x)


def batch_norm(x, name, epsilon=BN_EPSILON, momentum=BN_MOMENTUM):
    """torch's `BatchNorm2d(eps, momentum=0.1)`, with the backend's fused kernel
    (TensorFlow's in inference, torch's in training and inference)."""
    return BatchNormalization(
        axis=channel_axis(), epsilon=epsilon, momentum=momentum, name=name
    )(x)


def conv_bn_act(x, filters, kernel_size, *, strides=1, padding=0, groups=1,
                activation="relu", conv_name, bn_name, act_name=None,
                bn_epsilon=BN_EPSILON):
    """Convolution without bias, batch norm, activation (None: no activation)."""
    x = conv2d(x, filters, kernel_size, strides=strides, padding=padding,
               groups=groups, use_bias=False, name=conv_name)
    x = batch_norm(x, bn_name, epsilon=bn_epsilon)
    if activation is not None:
        x = keras.layers.Activation(activation, name=act_name or f"{bn_name}_act")(x)
    return x


def max_pool(x, pool_size, strides, *, padding=0, name):
    """torch's `MaxPool2d(k, s, padding=p)` (ceil_mode=False).

    torch pads with -inf; zero padding is the same here because every max pool
    in these families follows a ReLU (inputs >= 0). The pad stays a layer of its
    own: a pool padded inside with -inf (`TorchMaxPooling2D`), or with the
    input's minimum, broke the int8 LiteRT and the OpenVINO files of the
    ResNets, which a zero pad after a ReLU does not.
    """
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return MaxPooling2D(pool_size, strides, name=name)(x)


def torchvision_features(x, rows, *, pool_size, use_bn=False):
    """torchvision's `features` Sequential of AlexNet and VGG, built from a table.

    A row is "M", `MaxPool2d(pool_size, 2)`, or `(filters, kernel, stride,
    padding)`, a convolution followed by batch norm when `use_bn` (the
    convolution keeps its bias, as in torchvision) and ReLU. Each module is
    named `features_{i}`, `i` its index in the Sequential.
    """
    i = 0
    for row in rows:
        if row == "M":
            x = max_pool(x, pool_size, 2, name=f"features_{i}")
            i += 1
            continue
        filters, kernel, stride, padding = row
        x = conv2d(x, filters, kernel, strides=stride, padding=padding,
                   name=f"features_{i}")
        i += 1
        if use_bn:
            x = batch_norm(x, f"features_{i}")
            i += 1
        x = keras.layers.ReLU(name=f"features_{i}")(x)
        i += 1
    return x


# Blocks of the mobile families (MobileNetV2, EfficientNet), after torchvision's
# `Conv2dNormActivation`, `SqueezeExcitation`, `InvertedResidual` and `MBConv`.


def make_divisible(value, divisor=8, min_value=None):
    """torchvision's `_make_divisible`: the nearest multiple of `divisor`, at most 10% down.

    How MobileNetV2 and EfficientNet round scaled channel counts.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def depthwise_conv2d(x, kernel_size, *, strides=1, padding=0, use_bias=True,
                     name):
    """torch's `Conv2d(C, C, kernel_size, stride, padding, groups=C)`.

    kcnn's `DepthwiseConv2D`, not `Conv2D(groups=C)`: TensorFlow runs the
    grouped form about 6x slower on CPU, and kcnn's layer is Keras's with a
    fast formulation on JAX. Padding as in `conv2d`.
    """
    init = initializers.depthwise(x.shape[channel_axis()], kernel_size)
    return DepthwiseConv2D(
        kernel_size, strides=strides,
        padding=torch_padding(kernel_size, strides, padding), use_bias=use_bias,
        name=name, **init,
    )(x)


def conv_norm_activation(x, filters, kernel_size=3, *, strides=1,
                         depthwise=False, activation, name,
                         bn_epsilon=BN_EPSILON, bn_momentum=BN_MOMENTUM):
    """torchvision's `Conv2dNormActivation`, named as its `nn.Sequential`.

    A bias-free convolution with padding (k - 1) // 2 (`{name}_0`; depthwise
    when `depthwise`, `filters` then ignored), batch norm (`{name}_1`) and
    `activation` (`{name}_2`; None: none). Kernels are initialised as
    torchvision initialises MobileNet and EfficientNet (He normal, fan-out).
    """
    padding = (kernel_size - 1) // 2
    if depthwise:
        x = depthwise_conv2d(x, kernel_size, strides=strides, padding=padding,
                             use_bias=False, name=f"{name}_0")
    else:
        x = conv2d(x, filters, kernel_size, strides=strides, padding=padding,
                   use_bias=False, name=f"{name}_0")
    x = batch_norm(x, f"{name}_1", epsilon=bn_epsilon, momentum=bn_momentum)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_2")(x)
    return x


def squeeze_excitation(x, squeeze_channels, *, activation="relu",
                       scale_activation="sigmoid", name):
    """torchvision's `SqueezeExcitation` (Hu, Shen and Sun, 2017).

    x * scale_activation(fc2(activation(fc1(avgpool(x))))), where `fc1` and
    `fc2` are 1x1 convolutions with bias to `squeeze_channels` and back.
    """
    channels = x.shape[channel_axis()]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_avgpool")(x)
    s = conv2d(s, squeeze_channels, 1, name=f"{name}_fc1")
    s = keras.layers.Activation(activation, name=f"{name}_activation")(s)
    s = conv2d(s, channels, 1, name=f"{name}_fc2")
    s = keras.layers.Activation(scale_activation, name=f"{name}_scale_activation")(s)
    return keras.layers.Multiply(name=f"{name}_mul")([x, s])


def inverted_residual(x, filters, *, expanded_channels, kernel_size=3,
                      strides=1, activation, squeeze_channels=None,
                      drop_rate=0.0, bn_epsilon=BN_EPSILON,
                      bn_momentum=BN_MOMENTUM, name, body,
                      split_projection=False):
    """The inverted residual block: MobileNetV2's `InvertedResidual`, EfficientNet's `MBConv`.

    A 1x1 expansion to `expanded_channels` (left out when that equals the input
    channels), a depthwise `kernel_size` convolution with `strides`, squeeze-
    excitation when `squeeze_channels` is given, and a linear 1x1 projection
    to `filters`; each convolution with batch norm, the first two with
    `activation`. Where the shape is kept, the input is added back, after
    stochastic depth with `drop_rate` (torch's "row" mode) when that is > 0.

    Layers are named as the modules of torchvision's `nn.Sequential`
    `{name}.{body}` ("conv" in MobileNetV2, "block" in EfficientNet), numbered
    i = 0, 1, ... in order: `{name}_{body}_{i}_0/_1/_2` for a convolution block,
    `{name}_{body}_{i}_fc1`, `..._fc2` for squeeze-excitation. The projection
    is one such block in EfficientNet (`..._{i}_0`, `..._{i}_1`), but its
    convolution and batch norm are listed apart in MobileNetV2
    (`{name}_{body}_{i}`, `{name}_{body}_{i + 1}`): `split_projection=True`.
    The stochastic depth and the addition are `{name}_stochastic_depth` and
    `{name}_add`.
    """
    in_channels = x.shape[channel_axis()]
    bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
    prefix = f"{name}_{body}"
    shortcut = x
    i = 0
    if expanded_channels != in_channels:
        x = conv_norm_activation(x, expanded_channels, 1, activation=activation,
                                 name=f"{prefix}_{i}", **bn)
        i += 1
    x = conv_norm_activation(x, expanded_channels, kernel_size, strides=strides,
                             depthwise=True, activation=activation,
                             name=f"{prefix}_{i}", **bn)
    i += 1
    if squeeze_channels is not None:
        x = squeeze_excitation(x, squeeze_channels, activation=activation,
                               name=f"{prefix}_{i}")
        i += 1
    if split_projection:
        x = conv2d(x, filters, 1, use_bias=False, name=f"{prefix}_{i}")
        x = batch_norm(x, f"{prefix}_{i + 1}", epsilon=bn_epsilon, momentum=bn_momentum)
    else:
        x = conv_norm_activation(x, filters, 1, activation=None,
                                 name=f"{prefix}_{i}", **bn)
    if strides != 1 or in_channels != filters:
        return x
    if drop_rate > 0:
        x = StochasticDepth(drop_rate, mode="row", name=f"{name}_stochastic_depth")(x)
    return keras.layers.Add(name=f"{name}_add")([x, shortcut])
