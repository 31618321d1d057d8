"""DenseNet-BC (Huang, Liu, van der Maaten and Weinberger, 2017), as torchvision's.

"Densely Connected Convolutional Networks": a stem (7x7/2 convolution, batch
norm, ReLU, 3x3/2 max pool), four dense blocks separated by transitions, then
batch norm, ReLU, global average pooling and the classifier. Each dense layer
is pre-activation: BN, ReLU, 1x1 convolution to `bn_size * growth_rate`
channels (the bottleneck, bn_size 4), BN, ReLU, 3x3 convolution to
`growth_rate` channels (32; 48 for DenseNet-161), and its output is
concatenated to everything before it in the block. A transition (BN, ReLU, 1x1
convolution halving the channels, 2x2 average pool) joins two blocks. The four
variants differ only in their rows of `_VARIANTS`.

Input: 224x224 RGB with torchvision's ImageNet normalisation; any size from
29x29 (global average pooling head, so (None, None, 3) works).

Layout and names follow torchvision's `densenet.py` (`features_conv0`,
`features_denseblock1_denselayer1_norm1`, `features_transition1_conv`,
`features_norm5`, `classifier`), so a torchvision state dict converts by name.
Not reproduced: torchvision's `memory_efficient` checkpointing (it trades
compute for memory and changes no numbers) and its `drop_rate` (0 in every
torchvision variant). `init="torchvision"` (the default) draws the weights as
torchvision does: convolutions He normal (fan_in), the classifier torch's
default U(+-1/sqrt(fan_in)) with a zero bias; `init="keras"`: Keras's defaults.
"""

__all__ = ["densenet121", "densenet161", "densenet169", "densenet201"]

import functools

import keras

from kcnn.models import _common
from kcnn.models.blocks import batch_norm, conv2d, max_pool
from kcnn.registry import register

# As keras.applications': preprocess_input(x, data_format=None, weights="imagenet").
preprocess_input = _common.family_preprocess_input(__all__)

# depth: (growth rate, layers per dense block, stem filters), torchvision's.
_VARIANTS = {
    121: (32, (6, 12, 24, 16), 64),
    161: (48, (6, 12, 36, 24), 96),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
}
_BN_SIZE = 4

# Stride 2 in the stem convolution and pool, then three 2x2 pools: 29 is the
# smallest input that leaves a 1x1 map (29 -> 15 -> 8 -> 4 -> 2 -> 1).
_MIN_SIZE = 29


def _densenet(depth, **kwargs):
    """The DenseNet of `depth`; `kwargs`: the public builder's arguments."""
    args = _common.arguments("densenet", f"densenet{depth}", kwargs)
    img_input, hwc = _common.build_input(args, default_size=224, min_size=_MIN_SIZE,
                                         fixed_size_required=False)
    return _common.family_model(
        args, img_input, hwc,
        features=functools.partial(_features, depth=depth),
        head=_common.pooled_head(args, dense_name="classifier"),
        preprocessing=_common.imagenet_preprocessing())


def _features(x, depth):
    growth_rate, block_config, num_features = _VARIANTS[depth]
    x = conv2d(x, num_features, 7, strides=2, padding=3, use_bias=False,
               name="features_conv0")
    x = batch_norm(x, "features_norm0")
    x = keras.layers.ReLU(name="features_relu0")(x)
    x = max_pool(x, 3, 2, padding=1, name="features_pool0")
    for i, num_layers in enumerate(block_config, start=1):
        for j in range(1, num_layers + 1):
            x = _dense_layer(x, growth_rate,
                             name=f"features_denseblock{i}_denselayer{j}")
        num_features += num_layers * growth_rate
        if i != len(block_config):
            num_features //= 2
            x = _transition(x, num_features, name=f"features_transition{i}")
    x = batch_norm(x, "features_norm5")
    # torchvision applies this ReLU in forward() (F.relu), outside `features`.
    return keras.layers.ReLU(name="relu")(x)


def _dense_layer(x, growth_rate, *, name):
    """torchvision's _DenseLayer, with its output concatenated to its input.

    torchvision concatenates all earlier outputs of the block afresh in each
    layer; growing one concatenation layer by layer gives the same tensors.
    """
    y = batch_norm(x, f"{name}_norm1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = conv2d(y, _BN_SIZE * growth_rate, 1, use_bias=False, name=f"{name}_conv1")
    y = batch_norm(y, f"{name}_norm2")
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = conv2d(y, growth_rate, 3, padding=1, use_bias=False, name=f"{name}_conv2")
    return keras.layers.Concatenate(axis=_common.channel_axis(),
                                    name=f"{name}_concat")([x, y])


def _transition(x, filters, *, name):
    """torchvision's _Transition: BN, ReLU, 1x1 convolution, 2x2 average pool."""
    x = batch_norm(x, f"{name}_norm")
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = conv2d(x, filters, 1, use_bias=False, name=f"{name}_conv")
    return keras.layers.AveragePooling2D(2, 2, name=f"{name}_pool")(x)


@register
def densenet121(include_top=True, weights=None, input_tensor=None,
                input_shape=None, pooling=None, classes=1000,
                classifier_activation="softmax", init="torchvision",
                name="densenet121"):
    """DenseNet-121: growth rate 32, dense blocks of 6, 12, 24, 16 layers.

    7,978,856 parameters with 1000 classes. Input 224x224 RGB; any size from
    29x29. See the module docstring for the layout and `init`.
    """
    return _densenet(121, **locals())


@register
def densenet161(include_top=True, weights=None, input_tensor=None,
                input_shape=None, pooling=None, classes=1000,
                classifier_activation="softmax", init="torchvision",
                name="densenet161"):
    """DenseNet-161: growth rate 48, 96 stem filters, blocks of 6, 12, 36, 24.

    28,681,000 parameters with 1000 classes. Input 224x224 RGB; any size from
    29x29. See the module docstring for the layout and `init`.
    """
    return _densenet(161, **locals())


@register
def densenet169(include_top=True, weights=None, input_tensor=None,
                input_shape=None, pooling=None, classes=1000,
                classifier_activation="softmax", init="torchvision",
                name="densenet169"):
    """DenseNet-169: growth rate 32, dense blocks of 6, 12, 32, 32 layers.

    14,149,480 parameters with 1000 classes. Input 224x224 RGB; any size from
    29x29. See the module docstring for the layout and `init`.
    """
    return _densenet(169, **locals())


@register
def densenet201(include_top=True, weights=None, input_tensor=None,
                input_shape=None, pooling=None, classes=1000,
                classifier_activation="softmax", init="torchvision",
                name="densenet201"):
    """DenseNet-201: growth rate 32, dense blocks of 6, 12, 48, 32 layers.

    20,013,928 parameters with 1000 classes. Input 224x224 RGB; any size from
    29x29. See the module docstring for the layout and `init`.
    """
    return _densenet(201, **locals())
