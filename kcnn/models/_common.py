"""What every builder shares: argument checks, the input, the head, the model class.

Builders follow `keras.applications`: the same arguments (include_top, weights,
input_tensor, input_shape, pooling, classes, classifier_activation) with the same
meaning, checked here at the boundary with messages that name the argument, the
value given and what is allowed.
"""

import json
import os

import keras

# torchvision's ImageNet evaluation transform (resize 256, centre crop 224,
# ImageNet mean/std on [0, 1] pixels): the default for the ImageNet families
# until trained weights bring their own.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_POOLINGS = (None, "avg", "max")


def channel_axis():
    return -1 if keras.config.image_data_format() == "channels_last" else 1


def preprocessing(*, size, resize=None, mean=None, std=None, channels=3,
                  interpolation="bilinear"):
    """A preprocessing record: pixels scaled to [0, 1], then (x - mean) / std.

    `resize` is the shorter side before the centre crop of `size` (None: resize
    straight to `size`).
    """
    return {
        "scale": 1.0 / 255.0,
        "mean": list(mean) if mean is not None else [0.0] * channels,
        "std": list(std) if std is not None else [1.0] * channels,
        "resize": resize,
        "crop": size,
        "interpolation": interpolation,
    }


def imagenet_preprocessing(size=224, resize=256):
    return preprocessing(size=size, resize=resize, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD)


@keras.saving.register_keras_serializable(package="kcnn")
class Model(keras.Model):
    """A functional `keras.Model` that carries a metadata record.

    `model.metadata` is a JSON-serializable dict with the input size and
    channels, the preprocessing the model expects and its class names. It is
    part of the model's config, so it survives `.keras` save and load; training,
    prediction and export read it instead of hard-coding preprocessing.
    """

    def __init__(self, *args, metadata=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.metadata = metadata or {}

    # A plain dict, not one of Keras's tracked containers (which would wrap it
    # and change how it updates and serializes).
    @property
    def metadata(self):
        return self.__dict__.get("_kcnn_metadata")

    @metadata.setter
    def metadata(self, value):
        # A JSON round trip: plain containers, and only what a .keras file keeps.
        object.__setattr__(self, "_kcnn_metadata", json.loads(json.dumps(value)))

    def get_config(self):
        config = super().get_config()
        config["metadata"] = json.loads(json.dumps(self.metadata))
        return config


def check_arguments(*, model_name, include_top, weights, pooling, classes,
                    classifier_activation):
    """The `keras.applications` argument checks, with clear messages."""
    if not isinstance(include_top, bool):
        raise ValueError(
            f"include_top must be True or False; received include_top={include_top!r}."
        )
    if pooling not in _POOLINGS:
        raise ValueError(
            f"pooling must be one of None, 'avg' or 'max' for {model_name}; "
            f"received pooling={pooling!r}."
        )
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"classes must be a positive integer for {model_name}; "
            f"received classes={classes!r}."
        )
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                f"weights must be None (random initialisation) or the path to a "
                f"weights file for {model_name}; received weights={weights!r}."
            )
        if not os.path.isfile(weights):
            raise ValueError(
                f"weights={str(weights)!r}: no such file. weights must be None "
                f"(random initialisation) or the path to an existing weights "
                f"file (.weights.h5 or a torchvision .pth) for {model_name}."
            )
    try:
        keras.activations.get(classifier_activation)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"classifier_activation must be None, the name of a Keras activation "
            f"(such as 'softmax') or a callable; received "
            f"classifier_activation={classifier_activation!r}."
        ) from e


def check_rate(value, argument, model_name, upper_inclusive=False):
    """A dropout-like rate: a number in [0, 1) (or [0, 1] when `upper_inclusive`)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and 0 <= value and (value <= 1 if upper_inclusive else value < 1))
    if not ok:
        allowed = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(
            f"{argument} must be a rate in {allowed} for {model_name}; received "
            f"{argument}={value!r}."
        )


def spatial_and_channels(shape):
    """(height, width, channels) of a 3-tuple shape in the current data format."""
    if channel_axis() == -1:
        return shape[0], shape[1], shape[2]
    return shape[1], shape[2], shape[0]


def build_input(*, model_name, input_shape, input_tensor, default_size,
                default_channels=3, min_size, fixed_size_required):
    """Resolve `input_shape`/`input_tensor` into the model's input tensor.

    Returns `(img_input, (height, width, channels))`. `input_shape` is given in
    the order of `keras.config.image_data_format()`, as in `keras.applications`.
    `fixed_size_required`: the layers need known height and width (a flatten
    before dense layers), so `None` dimensions are refused.
    """
    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        h = w = default_size
        c = default_channels
    else:
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(
                f"input_shape must have 3 entries (height, width, channels in the "
                f"'{keras.config.image_data_format()}' order) for {model_name}; "
                f"received input_shape={input_shape!r}."
            )
        h, w, c = spatial_and_channels(shape)
    if c is None or not isinstance(c, int) or c < 1:
        raise ValueError(
            f"input_shape must give a known, positive number of channels for "
            f"{model_name}; received input_shape={input_shape!r}."
        )
    for dim in (h, w):
        if dim is None:
            if fixed_size_required:
                raise ValueError(
                    f"{model_name} with include_top=True needs a fixed input size "
                    f"(its classifier flattens the feature map); received "
                    f"input_shape={input_shape!r}. Give height and width, e.g. "
                    f"{_shape(default_size, default_size, c)}, or use "
                    f"include_top=False."
                )
        elif not isinstance(dim, int) or dim < min_size:
            raise ValueError(
                f"input_shape={input_shape!r} is too small for {model_name}: height "
                f"and width must be at least {min_size} (or None where the head "
                f"allows it)."
            )
    full_shape = _shape(h, w, c)
    if input_tensor is None:
        return keras.Input(shape=full_shape, name="input"), (h, w, c)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=full_shape), (h, w, c)
    return input_tensor, (h, w, c)


def _shape(h, w, c):
    return (h, w, c) if channel_axis() == -1 else (c, h, w)


def global_pool(x, pooling, name="pool"):
    """Apply the `pooling` of `include_top=False` (None keeps the feature map)."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=f"{name}_avg")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=f"{name}_max")(x)
    return x


def pooled_classifier(x, *, include_top, pooling, classes, classifier_activation,
                      dropout=0.0, pool_name="avgpool", dropout_name="dropout",
                      dense_name="fc"):
    """The head of the global-pooling families (ResNet, DenseNet, ...).

    With the top: global average pooling, optional dropout and a dense layer
    named as torchvision names its linear layer. Without: `pooling`.
    """
    if not include_top:
        return global_pool(x, pooling)
    x = keras.layers.GlobalAveragePooling2D(name=pool_name)(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=dropout_name)(x)
    return classifier(x, classes, classifier_activation, name=dense_name)


def classifier(x, classes, classifier_activation, name):
    """The last dense layer; the activation is a separate layer kept in float32.

    Keeping the activation apart keeps logits reachable (`model.get_layer(name)`).
    """
    # Under a mixed policy the logits are computed in float32 too, so that
    # losses and softmax see full precision, as Keras's mixed-precision guide does.
    mixed = keras.config.dtype_policy().name.startswith("mixed")
    x = keras.layers.Dense(classes, name=name, dtype="float32" if mixed else None)(x)
    if classifier_activation is not None:
        x = keras.layers.Activation(classifier_activation, dtype="float32",
                                    name="predictions")(x)
    return x


def make_model(*, img_input, input_tensor, outputs, name, hwc, classes,
               preprocessing, weights, include_top=True):
    """Wrap the graph in a `kcnn.models.Model` with metadata; load `weights`.

    Without the top, a weights file's classifier is ignored, as in
    `keras.applications`.
    """
    inputs = (keras.utils.get_source_inputs(input_tensor)
              if input_tensor is not None else img_input)
    h, w, c = hwc
    preprocessing = _fit_crop(preprocessing, h, w)
    metadata = {
        "input_size": [h, w],
        "channels": c,
        "preprocessing": preprocessing,
        "class_names": [str(i) for i in range(classes)],
    }
    model = Model(inputs, outputs, name=name, metadata=metadata)
    if weights is not None:
        load_weights(model, weights, skip_unmatched=not include_top)
    return model


def _fit_crop(preprocessing, h, w):
    """The record's crop made the model's input size, the resize kept in proportion.

    A reference record (resize 256, crop 224) on a 112x112 model becomes resize
    128, crop 112; a non-square input gets `crop` as [height, width]. Unknown
    sizes keep the reference record.
    """
    if h is None or w is None:
        return preprocessing
    crop = preprocessing["crop"]
    reference = crop if isinstance(crop, int) else max(crop)
    size = h if h == w else [h, w]
    if size == crop:
        return preprocessing
    resize = preprocessing.get("resize")
    if resize:
        resize = round(resize * min(h, w) / reference)
    return {**preprocessing, "crop": size, "resize": resize}


def load_weights(model, path, skip_unmatched=False):
    """Load a `.weights.h5` (Keras) or `.pth` (torchvision state dict) file."""
    path = os.fspath(path)
    if path.endswith((".pth", ".pt")):
        from kcnn.weights import load_pth

        return load_pth(model, path, skip_unmatched=skip_unmatched)
    if not path.endswith(".weights.h5"):
        raise ValueError(
            f"weights={path!r}: unsupported file type. Expected a Keras "
            f"'.weights.h5' file or a PyTorch state dict ('.pth')."
        )
    try:
        model.load_weights(path)
    except Exception as e:  # Keras raises several types for mismatches.
        raise ValueError(
            f"weights={path!r} does not match {model.name}: {e}"
        ) from e
