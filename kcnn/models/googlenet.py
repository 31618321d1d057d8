"""GoogLeNet, Inception v1 (Szegedy et al., 2015), laid out as torchvision's.

"Going Deeper with Convolutions": a stem (7x7/2 convolution, max pool, 1x1 and
3x3 convolutions, max pool), nine Inception modules (3a-3b, 4a-4e, 5a-5b)
separated by max pools, global average pooling, dropout and a linear
classifier. Each module concatenates four branches: a 1x1 convolution; 1x1 then
3x3; 1x1 then a second "5x5" branch; a 3x3 max pool (stride 1) then 1x1. Two
auxiliary classifiers read the outputs of 4a and 4d during training.

Where torchvision departs from the paper, and kcnn with it:
- The "5x5" branch uses a 3x3 convolution (torchvision's known bug, kept for
  compatibility with its weights: pytorch/vision#906).
- Every convolution is followed by batch norm (eps 1e-3) before its ReLU
  (BasicConv2d); the paper has no batch norm (it came later).
- The max pools use ceil mode (Caffe's rounding), reproduced exactly for every
  input size by `kcnn.layers.TorchMaxPooling2D`.
- The auxiliary heads pool adaptively to 4x4 (the paper: 5x5 average pool,
  stride 3, which gives 4x4 at 224x224) and feed a 1x1 convolution of 128
  filters, fc 2048 -> 1024 with ReLU, dropout 0.7 and the classifier.
- `transform_input=True` re-normalises ImageNet-normalised input to the
  (x - 0.5) / 0.5 scaling that the weights ported from the original model
  expect (torchvision's `_transform_input`).

Layer names are torchvision's module paths with "_" for "." (`conv1_conv`,
`inception3a_branch2_1_bn`, `aux1_conv_conv`, `aux1_fc1`, `fc`), so a
torchvision state dict converts by name. `init="torchvision"` (the default)
draws the weights as torchvision does: every convolution and dense kernel from
N(0, 0.01) (its `trunc_normal_` cuts at +-2, 200 standard deviations away), the
dense biases torch's default U(+-1/sqrt(fan_in)); `init="keras"`: Keras's
defaults.
"""

__all__ = ["googlenet"]

import functools

import keras
from keras import ops

from kcnn.layers.pooling import AdaptiveAveragePooling2D, TorchMaxPooling2D
from kcnn.models import _common, initializers
from kcnn.models.blocks import conv_bn_act
from kcnn.registry import register

# torchvision's BasicConv2d uses BatchNorm2d(eps=0.001).
_BN_EPSILON = 1e-3

# The body after the stem, in order: Inception modules with their branch
# widths (1x1; 3x3 reduce, 3x3; "5x5" reduce, "5x5"; pool projection), and the
# ceil-mode max pools between them with their window (stride 2).
_BODY = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("maxpool3", 3),
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("maxpool4", 2),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)
# The auxiliary classifiers and the module whose output each one reads.
_AUX_AFTER = {"inception4a": "aux1", "inception4d": "aux2"}

# The smallest input for which every pool still has a window (torchvision's
# min_size): 15 -> 8 -> 4 -> 2 -> 1 -> 1.
_MIN_SIZE = 15

# ImageNet mean and std, as torchvision's `_transform_input` writes them.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)

# As keras.applications': preprocess_input(x, data_format=None, weights="imagenet").
preprocess_input = _common.family_preprocess_input(__all__)


@register
def googlenet(include_top=True, weights=None, input_tensor=None,
              input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", dropout=0.2, aux_logits=False,
              dropout_aux=0.7, transform_input=None, init="torchvision",
              name="googlenet"):
    """GoogLeNet (Inception v1), exactly torchvision's `googlenet`.

    6,624,904 parameters with 1000 classes; 13,004,888 with the auxiliary
    classifiers. Input 224x224 RGB with torchvision's ImageNet normalisation;
    any size from 15x15 (global average pooling head, so (None, None, 3) works;
    with `aux_logits=True` the size must be fixed, because the auxiliary heads
    pool adaptively to 4x4). See the module docstring for the layout and the
    departures from the paper.

    Args:
        dropout: dropout rate before the classifier.
        aux_logits: add the two auxiliary classifiers. The model then has three
            outputs in torchvision's order `GoogLeNetOutputs(logits,
            aux_logits2, aux_logits1)`: the main classifier, the head after
            inception4d, the head after inception4a (each with
            `classifier_activation`). Unlike torchvision, which computes the
            auxiliary heads in training mode only, the model has its three
            outputs in training and inference alike. Train with, for example,
            `loss_weights=[1.0, 0.3, 0.3]` (the paper's 0.3). For inference
            take the main output, `keras.Model(model.inputs,
            model.outputs[0])` (it shares the weights), or build the model
            with `aux_logits=False`: its layers have the same names, so the
            weights copy by name (`layer.set_weights(trained.get_layer(
            layer.name).get_weights())` for each layer with weights); a
            `.weights.h5` file, which Keras matches by position, does not
            fit. Needs `include_top=True` and a fixed input size.
        dropout_aux: dropout rate in the auxiliary classifiers.
        transform_input: re-normalise ImageNet-normalised input inside the
            model to the (x - 0.5) / 0.5 scaling that the weights ported from
            the original GoogLeNet expect. None (the default): on with
            torchvision's weights (`weights="imagenet"`), as torchvision does,
            off otherwise. Needs three input channels.
        weights: as in `keras.applications`; "imagenet" loads torchvision's
            weights (the auxiliary heads, with `aux_logits=True`, keep their
            initial weights: torchvision notes those in its file are not
            trained).
        init: "torchvision" (see the module docstring) or "keras".
        Other arguments as in `keras.applications`.
    """
    args = _common.arguments("googlenet", "googlenet", locals())
    _common.check_rate(dropout, "dropout", name)
    _common.check_rate(dropout_aux, "dropout_aux", name)
    if transform_input is None:
        transform_input = _common.weights_argument(args, "transform_input", False)
    for arg, flag in (("aux_logits", aux_logits), ("transform_input", transform_input)):
        if not isinstance(flag, bool):
            raise ValueError(
                f"{arg} must be True or False for {name}; received {arg}={flag!r}."
            )
    if aux_logits and not include_top:
        raise ValueError(
            f"aux_logits=True adds classifiers, so {name} needs include_top=True "
            f"with it; received include_top=False."
        )
    img_input, hwc = _common.build_input(args, default_size=224, min_size=_MIN_SIZE,
                                         fixed_size_required=False)
    if aux_logits and None in hwc[:2]:
        raise ValueError(
            f"aux_logits=True needs a fixed input size for {name} (the auxiliary "
            f"heads pool adaptively to 4x4, which needs a known size on "
            f"TensorFlow); received input_shape={input_shape!r}."
        )
    if transform_input and hwc[2] != 3:
        raise ValueError(
            f"transform_input=True re-normalises the three RGB channels, so "
            f"{name} needs 3 input channels with it; received "
            f"input_shape={input_shape!r}."
        )
    aux_head = (functools.partial(_inception_aux, args=args, dropout=dropout_aux)
                if aux_logits else None)
    aux = {}  # the auxiliary outputs by name, filled in by `_body`
    main_head = _common.pooled_head(args, dropout=dropout, dense_name="fc")

    def head(x):
        # torchvision's order: GoogLeNetOutputs(logits, aux_logits2, aux_logits1).
        return [main_head(x), aux["aux2"], aux["aux1"]] if aux else main_head(x)

    return _common.family_model(
        args, img_input, hwc,
        features=functools.partial(_body, transform_input=transform_input,
                                   aux_head=aux_head, aux=aux),
        head=head, preprocessing=_common.imagenet_preprocessing())


def _body(x, transform_input, aux_head, aux):
    """The stem and the inception modules; with an `aux_head`, the auxiliary
    classifiers go into `aux` by name."""
    if transform_input:
        x = GoogLeNetInputTransform(name="transform_input")(x)
    x = _basic_conv(x, 64, 7, strides=2, padding=3, name="conv1")
    x = TorchMaxPooling2D(3, 2, ceil_mode=True, name="maxpool1")(x)
    x = _basic_conv(x, 64, 1, name="conv2")
    x = _basic_conv(x, 192, 3, padding=1, name="conv3")
    x = TorchMaxPooling2D(3, 2, ceil_mode=True, name="maxpool2")(x)
    for module, spec in _BODY:
        if module.startswith("maxpool"):
            x = TorchMaxPooling2D(spec, 2, ceil_mode=True, name=module)(x)
            continue
        x = _inception(x, *spec, name=module)
        if aux_head and module in _AUX_AFTER:
            name = _AUX_AFTER[module]
            aux[name] = aux_head(x, name=name)
    return x


def _basic_conv(x, filters, kernel_size, *, strides=1, padding=0, name):
    """torchvision's BasicConv2d: convolution (no bias), BN (eps 1e-3), ReLU."""
    return conv_bn_act(x, filters, kernel_size, strides=strides, padding=padding,
                       conv_name=f"{name}_conv", bn_name=f"{name}_bn",
                       act_name=f"{name}_relu", bn_epsilon=_BN_EPSILON)


def _inception(x, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, *, name):
    """torchvision's Inception module: four branches, concatenated."""
    branch1 = _basic_conv(x, ch1x1, 1, name=f"{name}_branch1")
    branch2 = _basic_conv(x, ch3x3red, 1, name=f"{name}_branch2_0")
    branch2 = _basic_conv(branch2, ch3x3, 3, padding=1, name=f"{name}_branch2_1")
    branch3 = _basic_conv(x, ch5x5red, 1, name=f"{name}_branch3_0")
    # 3x3, not the paper's 5x5: torchvision's layout (see the module docstring).
    branch3 = _basic_conv(branch3, ch5x5, 3, padding=1, name=f"{name}_branch3_1")
    branch4 = TorchMaxPooling2D(3, 1, padding=1, ceil_mode=True,
                                name=f"{name}_branch4_0")(x)
    branch4 = _basic_conv(branch4, pool_proj, 1, name=f"{name}_branch4_1")
    return keras.layers.Concatenate(axis=_common.channel_axis(),
                                    name=f"{name}_concat")(
        [branch1, branch2, branch3, branch4])


def _inception_aux(x, args, dropout, *, name):
    """torchvision's InceptionAux: 4x4 pool, 1x1 conv 128, fc 1024, fc classes.

    The classifier is `_common.classifier`'s, float32 logits included.
    """
    x = AdaptiveAveragePooling2D(4, name=f"{name}_pool")(x)
    x = _basic_conv(x, 128, 1, name=f"{name}_conv")
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc1",
                           **initializers.dense(x.shape[-1], 1024))(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return _common.classifier(x, args.classes, args.classifier_activation,
                              name=f"{name}_fc2", activation_name=f"{name}_predictions")


@keras.saving.register_keras_serializable(package="kcnn")
class GoogLeNetInputTransform(keras.layers.Layer):
    """torchvision's `GoogLeNet._transform_input`: y_c = x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5.

    Input normalised with the ImageNet mean and std, x = (p - mean) / std for
    pixels p in [0, 1], becomes (p - 0.5) / 0.5, the scaling of the weights
    ported from the original GoogLeNet. Three channels, RGB.
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or keras.config.image_data_format()

    def call(self, inputs):
        shape = (3,) if self.data_format == "channels_last" else (3, 1, 1)
        scale = ops.reshape(ops.convert_to_tensor(
            [s / 0.5 for s in _STD], dtype=self.compute_dtype), shape)
        offset = ops.reshape(ops.convert_to_tensor(
            [(m - 0.5) / 0.5 for m in _MEAN], dtype=self.compute_dtype), shape)
        return ops.cast(inputs, self.compute_dtype) * scale + offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
