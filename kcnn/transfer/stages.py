"""A model's head and stages, and which of them train.

The head is what comes after the backbone's features: the classifier (and
anything `replace_classifier` put there, recorded in the metadata under
`features_layer`). The backbone is cut into stages, in order, the way the
reference implementation groups its modules:

- ResNet: `conv1` (the stem), `layer1` .. `layer4`.
- DenseNet: `conv0` (the stem), `denseblock1` .. `denseblock4`, each with
  the transition after it (`norm5` joins `denseblock4`).
- GoogLeNet: `conv1` .. `conv3`, `inception3a` .. `inception5b`; the
  auxiliary classifiers are head.
- MobileNetV2, EfficientNet: torchvision's `features_0` .. `features_N`.
- VGG, AlexNet, LeNet, simple_cnn: one stage per pooling step, named after
  its first layer with weights (`features_0`, `features_3`, ... for VGG and
  AlexNet; `conv1`, `conv2`, ... for AlexNet's paper layout, LeNet and
  simple_cnn); the hidden dense layers before the classifier are one more
  stage (VGG's `classifier_0`, AlexNet's `classifier_1` or `fc6`, `fc1`).

Layers named after a torchvision module path (the rules below) take that
module's stage; any other layer joins the stage before it, and a layer with
weights that follows a pooling layer (or a stage found by name) opens a new
stage named after itself. So any functional model gets stages, and a stage or
any layer name can be used as a cut point.
"""

import re

import keras

from kcnn import _keras_internal
from kcnn.layers.pooling import TorchMaxPooling2D

# (pattern on the layer name, stage name): torchvision's module paths.
_STAGE_RULES = tuple((re.compile(pattern), stage) for pattern, stage in (
    (r"^(layer\d+)_", r"\1"),                                       # ResNet
    (r"^features_(?:denseblock|transition)(\d+)_", r"denseblock\1"),  # DenseNet
    (r"^features_(?:conv|norm|relu|pool)0(?:_|$)", "conv0"),
    (r"^features_norm5$", "denseblock4"),
    (r"^(inception\d+[a-z])_", r"\1"),                              # GoogLeNet
    (r"^(conv\d+)_", r"\1"),                  # GoogLeNet's stem, ResNet's conv1_pad
    (r"^(features_\d+)_", r"\1"),                          # MobileNetV2, EfficientNet
))

_POOLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
            keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D,
            keras.layers.AdaptiveAveragePooling2D, keras.layers.AdaptiveMaxPooling2D,
            TorchMaxPooling2D)

def features_layer(model):
    """The name of the layer whose output the head reads (the backbone's end).

    A model from `replace_classifier` records it; otherwise it is the layer
    feeding the classifier (the dense layer that makes the first output,
    before its activation), or the output layer of a model without a
    classifier (`include_top=False`), whose head is then empty.
    """
    _check_model(model)
    recorded = (getattr(model, "metadata", None) or {}).get("features_layer")
    if recorded:
        return recorded
    classifier = _classifier(model)
    if classifier is None:
        return _producer(model.outputs[0]).name
    return _producer(classifier.input).name


def head_layers(model):
    """Names of the layers after the backbone, in model order."""
    backbone = set(_backbone_names(model))
    return [layer.name for layer in model.layers
            if layer.name not in backbone and not _is_input(layer)]


def stages(model):
    """The backbone's stages, in order: a dict of stage name -> layer names.

    See the module docstring for how stages are found. The head (see
    `head_layers`) is not a stage.
    """
    backbone = set(_backbone_names(model))
    layers = [layer for layer in model.layers
              if layer.name in backbone and not _is_input(layer)]
    result = {}
    current = None  # the open stage
    pending = []  # weightless layers before the first stage
    boundary = True  # the next layer with weights opens a stage
    for layer in layers:
        stage = _rule_stage(layer.name)
        if stage is not None:
            boundary = True  # a stage found by name ends at its last layer
        elif _has_parameters(layer) and (boundary or current is None):
            stage, boundary = layer.name, False
        elif current is None:
            pending.append(layer.name)
            continue
        else:
            stage = current
        if stage not in result:
            result[stage] = []
        result[stage] += pending + [layer.name]
        pending, current = [], stage
        if isinstance(layer, _POOLING):
            boundary = True
    if pending:  # a backbone without weights
        result.setdefault(current or "stem", []).extend(pending)
    return result


def set_trainable(model, trainable_stages, *, freeze_batch_norm=False):
    """Train the head and `trainable_stages` (names); freeze every other layer.

    Every layer's `trainable` flag is set, so the state does not depend on
    earlier calls. Frozen `BatchNormalization` layers run in inference mode
    (their moving statistics stay as they are), as Keras does for
    `trainable=False`; `freeze_batch_norm=True` freezes them in the trainable
    stages too (what the Keras transfer-learning guide recommends when
    fine-tuning on little data). Compile again before training.
    """
    all_stages = stages(model)
    if isinstance(trainable_stages, str) or not isinstance(trainable_stages, (list, tuple)):
        raise ValueError(f"trainable_stages must be a list of stage names (of "
                         f"{', '.join(all_stages)}); received "
                         f"trainable_stages={trainable_stages!r}.")
    unknown = [s for s in trainable_stages if s not in all_stages]
    if unknown:
        raise ValueError(
            f"trainable_stages: Unknown stage(s) {unknown} for {model.name}; its stages "
            f"are {', '.join(all_stages)}.")
    model.trainable = True
    training = set(head_layers(model))
    for stage in trainable_stages:
        training.update(all_stages[stage])
    for layer in model.layers:
        on = layer.name in training
        if freeze_batch_norm and isinstance(layer, keras.layers.BatchNormalization):
            on = False
        layer.trainable = on
    return model


def freeze(model, up_to=None, *, freeze_batch_norm=False):
    """Freeze the backbone, or everything up to a stage or layer; train the rest.

    Args:
        model: a functional Keras model (any kcnn model).
        up_to: None: the whole backbone is frozen and only the head trains.
            A stage name (see `stages`) or a layer name (a stage wins over a
            layer of the same name): that stage or layer and everything
            before it is frozen, every later layer trains.
        freeze_batch_norm: see `set_trainable`.

    Returns:
        The model (its `trainable` flags changed in place). Compile again.
    """
    all_stages = stages(model)
    if up_to is None:
        return set_trainable(model, [], freeze_batch_norm=freeze_batch_norm)
    names = [layer.name for layer in model.layers]
    if up_to in all_stages:
        last = all_stages[up_to][-1]
    elif up_to in names:
        last = up_to
    else:
        raise ValueError(
            f"up_to={up_to!r} is neither a stage nor a layer of {model.name}. Its "
            f"stages are {', '.join(all_stages)}; any layer name also works.")
    cut = names.index(last)
    model.trainable = True
    for i, layer in enumerate(model.layers):
        on = i > cut
        if freeze_batch_norm and isinstance(layer, keras.layers.BatchNormalization):
            on = False
        layer.trainable = on
    return model


def unfreeze(model, last=None, *, freeze_batch_norm=False):
    """Train the head and the last `last` stages (None: every stage).

    `last=0` trains the head alone, like `freeze(model)`. Earlier stages are
    frozen. Returns the model; compile again.
    """
    all_stages = list(stages(model))
    if last is None:
        last = len(all_stages)
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise ValueError(f"last must be None or a number of stages >= 0; received "
                         f"last={last!r}.")
    chosen = all_stages[len(all_stages) - min(last, len(all_stages)):]
    return set_trainable(model, chosen, freeze_batch_norm=freeze_batch_norm)


def gradual_schedule(model, epochs, every=1, start=None):
    """When each stage starts training under gradual unfreezing (ULMFiT style).

    The head trains from epoch 0; the last stage joins at epoch `start`
    (default `every`), the one before it `every` epochs later, and so on up
    to the first stage. Stages whose turn comes at or after `epochs` stay
    frozen and are left out.

    Returns:
        dict stage name -> first epoch it trains (0-based), last stage first.
    """
    for name, value, low in (("epochs", epochs, 1), ("every", every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; received "
                             f"{name}={value!r}.")
    start = every if start is None else start
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an epoch >= 0; received start={start!r}.")
    schedule = {}
    for i, stage in enumerate(reversed(list(stages(model)))):
        epoch = start + i * every
        if epoch >= epochs:
            break
        schedule[stage] = epoch
    return schedule


# ----------------------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, keras.Model) or not hasattr(model, "outputs") \
            or not model.outputs:
        raise ValueError(f"model must be a functional Keras model (such as a kcnn "
                         f"model); received {model!r}.")


def _is_input(layer):
    return isinstance(layer, keras.layers.InputLayer)


def _has_parameters(layer):
    # Variables created trainable, whatever the flag says now (freezing clears
    # `variable.trainable`); Dropout's seed state is not one.
    return any(_keras_internal.created_trainable_variables(sub)
               for sub in _keras_internal.flatten_layers(layer))


def _producer(tensor):
    return _keras_internal.producer(tensor)


def _classifier(model):
    """The dense layer making the first output (through an activation), or None."""
    layer = _producer(model.outputs[0])
    if isinstance(layer, (keras.layers.Activation, keras.layers.Softmax)):
        layer = _producer(layer.input)
    return layer if isinstance(layer, keras.layers.Dense) else None


def _backbone_names(model):
    """Names of the layers the features layer's output depends on (itself included)."""
    name = features_layer(model)
    try:
        layer = model.get_layer(name)
    except ValueError as e:
        raise ValueError(f"{model.name}: its metadata names features_layer={name!r}, "
                         f"which is not one of its layers.") from e
    graph = keras.Model(model.inputs, layer.output)
    return [layer.name for layer in graph.layers]


def _rule_stage(name):
    for pattern, stage in _STAGE_RULES:
        match = pattern.match(name)
        if match:
            return match.expand(stage)
    return None
