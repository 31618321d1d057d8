"""A new classifier on a trained backbone."""

import keras

from kcnn.loading import as_model
from kcnn.models import _common
from kcnn.models._common import Model
from kcnn.transfer import stages as _stages


def replace_classifier(model, classes, *, dropout=0.0, hidden=None, features=None,
                       classifier_activation="softmax", name=None):
    """The model with a new classifier for `classes`, the backbone's weights kept.

    The new head reads the backbone's features (by default what the old
    classifier read: ResNet's pooled features, AlexNet's and VGG's second
    hidden layer, ...): [global average pooling if the features are a
    feature map] -> [dense `hidden` + ReLU] -> [dropout] -> dense `classes`
    (named like the old classifier; its kernel starts at zero, as in BiT, so
    the first steps fit the head to the features rather than undo a random
    projection of them) -> activation. The old classifier, and any auxiliary
    classifier (GoogLeNet's), is dropped.

    The new model shares the backbone's layers, and so their weights, with
    `model` (as `keras.applications` transfer learning does); build or load
    another copy to keep the original apart. Its metadata is the old one with
    the new class names and `features_layer`, the layer the head reads, so
    `kcnn.transfer.stages` and `head_layers` know the new head after a save
    and load.

    Args:
        model: a functional Keras model (any kcnn model, trained or not).
        classes: the number of classes, or the list of class names.
        dropout: rate of a dropout layer before the classifier (0: none).
        hidden: units of a hidden dense layer with ReLU before it (None: none).
        features: the name of the layer whose output the head reads (default:
            what the old classifier read; for a model without a classifier,
            its output).
        classifier_activation: as in the builders (None gives logits).
        name: the new model's name (default: the old one).

    Returns:
        A `kcnn.models.Model`.
    """
    model = as_model(model)
    _stages._check_model(model)
    class_names = _class_names(classes)
    _common.check_rate(dropout, "dropout", model.name)
    if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int)
                               or hidden < 1):
        raise ValueError(f"hidden must be None or a positive number of units; received "
                         f"hidden={hidden!r}.")
    try:
        keras.activations.get(classifier_activation)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"classifier_activation must be None, the name of a Keras activation or a "
            f"callable; received classifier_activation={classifier_activation!r}.") from e

    if features is None:
        features = _stages.features_layer(model)
    try:
        x = model.get_layer(features).output
    except ValueError as e:
        raise ValueError(f"features={features!r} is not a layer of {model.name}.") from e
    old = _stages._classifier(model)
    dense_name = old.name if old is not None else "fc"

    backbone = {layer.name for layer in keras.Model(model.inputs, x).layers}
    new_names = {"head_pool", "head_hidden", "head_dropout", dense_name, "predictions"}
    clash = sorted(backbone & new_names)
    if clash:
        raise ValueError(f"The new head's layer names {clash} are already used by the "
                         f"backbone of {model.name} up to features={features!r}.")

    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    elif len(x.shape) != 2:
        raise ValueError(f"features={features!r} gives tensors of shape {x.shape}; the "
                         f"head needs a feature map (batch, H, W, C) or a vector.")
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name="head_hidden")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = _common.classifier(x, len(class_names), classifier_activation, dense_name)
    dense = _stages._producer(outputs)
    if not isinstance(dense, keras.layers.Dense):  # the activation after it
        dense = _stages._producer(dense.input)
    dense.kernel.assign(keras.ops.zeros(dense.kernel.shape, dense.kernel.dtype))

    metadata = dict(getattr(model, "metadata", None) or {})
    metadata.update(class_names=class_names, features_layer=features)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return Model(inputs, outputs, name=name or model.name, metadata=metadata)


def outputs_probabilities(model):
    """Whether the model's first output is a softmax (else: logits or other)."""
    producer = _stages._producer(model.outputs[0])
    activation = getattr(producer, "activation", None)
    return isinstance(producer, keras.layers.Softmax) or (
        activation is not None and getattr(activation, "__name__", "") == "softmax")


def _class_names(classes):
    if isinstance(classes, int) and not isinstance(classes, bool):
        if classes < 1:
            raise ValueError(f"classes must be a positive integer or a list of class "
                             f"names; received classes={classes!r}.")
        return [str(i) for i in range(classes)]
    if isinstance(classes, (list, tuple)) and classes and all(
            isinstance(c, str) for c in classes):
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes has repeated names: {list(classes)!r}.")
        return list(classes)
    raise ValueError(f"classes must be a positive integer or a non-empty list of class "
                     f"names (str); received classes={classes!r}.")
