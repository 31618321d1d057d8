"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998)."""

__all__ = ["lenet5"]

import functools

import keras

from kcnn.layers import AdaptiveAveragePooling2D
from kcnn.models import _common, initializers
from kcnn.models.blocks import conv2d
from kcnn.registry import register


@register
def lenet5(include_top=True, weights=None, input_tensor=None, input_shape=None,
           pooling=None, classes=10, classifier_activation="softmax",
           init="keras", name="lenet5"):
    """LeNet-5: 6-16-120-84-10 with tanh and average pooling.

    C1 (6 filters 5x5), S2 (2x2 average pooling), C3 (16 filters 5x5), S4, C5
    (a dense layer of 120 on the 16x5x5 map), F6 (84), and the classifier;
    tanh throughout, as in the paper, without its sparse C3 connection table
    and RBF output (the common modern form). The paper's input is 32x32; the
    usual MNIST input is 28x28, where C1 is padded by 2 so that both give the
    same 28x28 C1 maps. 61,706 parameters with 10 classes. Inputs from 28x28 up;
    other sizes are pooled adaptively to the 5x5 map before C5.

    `init`: "keras" (Keras's defaults) or "torchvision" (torch's layer
    defaults, what a PyTorch LeNet gets: U(+-1/sqrt(fan_in)) for weights and
    biases; torchvision has no LeNet).
    """
    args = _common.arguments("lenet5", "lenet5", locals())
    img_input, hwc = _common.build_input(args, default_size=28, default_channels=1,
                                         min_size=28, fixed_size_required=include_top)
    h, w, channels = hwc
    small = h is not None and w is not None and min(h, w) < 32
    return _common.family_model(
        args, img_input, hwc, features=functools.partial(_features, small=small),
        head=functools.partial(_head, args=args,
                               pool=(h, w) not in ((28, 28), (32, 32))),
        preprocessing=_common.preprocessing(size=h, channels=channels))


def _features(x, small):
    """C1, S2, C3, S4; C1 padded by 2 on the 28x28 inputs, as in the PyTorch ports."""
    x = conv2d(x, 6, 5, padding=2 if small else 0, activation="tanh", name="conv1")
    x = keras.layers.AveragePooling2D(2, name="pool1")(x)
    x = conv2d(x, 16, 5, activation="tanh", name="conv2")
    return keras.layers.AveragePooling2D(2, name="pool2")(x)


def _head(x, args, pool):
    """C5, F6 and the classifier; `pool`: other input sizes pool adaptively to 5x5."""
    if pool:
        x = AdaptiveAveragePooling2D(5, name="adaptive_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for units, layer in ((120, "fc1"), (84, "fc2")):
        x = keras.layers.Dense(units, activation="tanh", name=layer,
                               **initializers.dense(x.shape[-1], units))(x)
    return _common.classifier(x, args.classes, args.classifier_activation, name="fc3")
