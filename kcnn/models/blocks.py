"""Blocks shared by the families, written to match torchvision's modules exactly.

Padding follows torch: a `Conv2d(padding=p)` is `ZeroPadding2D(p)` followed by a
"valid" convolution. Keras's "same" equals that only at stride 1 with an odd
kernel and p = k // 2 (it pads bottom/right only at stride 2), so "same" is used
only there, where it saves a padding layer.

Layer names are torchvision's module paths with "_" for "." (dots break the
torch backend), so converting a state dict is a mapping of names.
"""

import keras

from kcnn.models._common import channel_axis

# torch.nn.BatchNorm2d defaults: eps 1e-5, running stats updated with 0.1.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def conv2d(x, filters, kernel_size, *, strides=1, padding=0, groups=1,
           use_bias=True, name, kernel_initializer="glorot_uniform",
           bias_initializer="zeros"):
    """torch's `Conv2d(kernel_size, stride, padding, groups, bias)` as Keras layers."""
    if padding and strides == 1 and kernel_size % 2 == 1 and padding == kernel_size // 2:
        pad_mode = "same"
    else:
        pad_mode = "valid"
        if padding:
            x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=pad_mode, groups=groups,
        use_bias=use_bias, kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer, name=name,
    )(x)


def batch_norm(x, name, epsilon=BN_EPSILON, momentum=BN_MOMENTUM):
    return keras.layers.BatchNormalization(
        axis=channel_axis(), epsilon=epsilon, momentum=momentum, name=name
    )(x)


def conv_bn_act(x, filters, kernel_size, *, strides=1, padding=0, groups=1,
                activation="relu", conv_name, bn_name, act_name=None,
                bn_epsilon=BN_EPSILON, kernel_initializer="glorot_uniform"):
    """Convolution without bias, batch norm, activation (None: no activation)."""
    x = conv2d(x, filters, kernel_size, strides=strides, padding=padding,
               groups=groups, use_bias=False, name=conv_name,
               kernel_initializer=kernel_initializer)
    x = batch_norm(x, bn_name, epsilon=bn_epsilon)
    if activation is not None:
        x = keras.layers.Activation(activation, name=act_name or f"{bn_name}_act")(x)
    return x


def max_pool(x, pool_size, strides, *, padding=0, name):
    """torch's `MaxPool2d(k, s, padding=p)` (ceil_mode=False).

    torch pads with -inf; zero padding is the same here because every max pool
    in these families follows a ReLU (inputs >= 0).
    """
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(pool_size, strides, name=name)(x)
