"""What every builder shares: argument checks, the input, the head, the model class.

Builders follow `keras.applications`: the same arguments (include_top, weights,
input_tensor, input_shape, pooling, classes, classifier_activation) with the same
meaning, checked here at the boundary with messages that name the argument, the
value given and what is allowed. `weights` is None, a file (`.weights.h5` or a
torchvision `.pth`), or a name: "imagenet" (torchvision's default weights for
the builder) or a tag from `kcnn.weights.list_weights()`, downloaded and cached
by `kcnn.weights.hub`.
"""

import dataclasses
import functools
import json
import os

import keras

from kcnn import _keras_internal as internal
from kcnn.layers import inplace
from kcnn.models import initializers
from kcnn.registry import get_builder
from kcnn.weights import hub
from kcnn.weights import preprocessing as _preprocessing
from kcnn.weights.preprocessing import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401

_POOLINGS = (None, "avg", "max")


def channel_axis():
    return -1 if keras.config.image_data_format() == "channels_last" else 1


def preprocessing(*, size, resize=None, mean=None, std=None, channels=3,
                  interpolation="bilinear"):
    """A preprocessing record: pixels scaled to [0, 1], then (x - mean) / std.

    `resize` is the shorter side before the centre crop of `size` (None: resize
    straight to `size`). See `kcnn.weights.preprocessing.record`.
    """
    return _preprocessing.record(crop=size, resize=resize, mean=mean, std=std,
                                 channels=channels, interpolation=interpolation)


def imagenet_preprocessing(size=224, resize=256):
    """torchvision's ImageNet evaluation transform: the default until weights bring theirs."""
    return _preprocessing.imagenet_record(crop=size, resize=resize)


def family_preprocess_input(builders):
    """A family module's `preprocess_input`, bound to the weights of its `builders`."""

    def preprocess_input(x, data_format=None, weights="imagenet"):
        entries = [e for e in (hub.find_weights(b, weights) for b in builders) if e]
        if not entries:
            raise ValueError(
                f"weights={weights!r} names no weights of {', '.join(builders)}; "
                f"{hub.available_names(builders[0])}."
            )
        return _preprocessing.preprocess_input(x, entries[0].preprocessing, data_format)

    preprocess_input.__doc__ = f"""Normalise RGB pixels in [0, 255] as the named weights expect.

    For {', '.join(builders)}: float32 `(x / 255 - mean) / std` per channel with
    the statistics of `weights` ("imagenet" by default, or a tag of
    `kcnn.weights.list_weights()`), as `keras.applications`' `preprocess_input`
    (no resizing: `kcnn.predict` and the exported raw-image signature also
    resize and crop). `x`: a batch or one image, channels in the order of
    `data_format` (default `keras.config.image_data_format()`); a NumPy array
    gives a NumPy array.
    """
    return preprocess_input


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

    def call(self, inputs, training=None, mask=None, **kwargs):
        # Inference on torch with autograd off (predict, evaluate, serving)
        # runs each layer's `call` directly where Keras's `__call__` would only
        # pass the tensors through (why: `_keras_internal.inference_call`).
        if (training or mask is not None or kwargs or keras.backend.backend() != "torch"
                or not _autograd_off() or inplace.tracing()):
            return super().call(inputs, training=training, mask=mask, **kwargs)
        outputs = self._run_through_graph(internal.standardized_inputs(self, inputs),
                                          operation_fn=internal.inference_call)
        return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 \
            else outputs

    def _run_through_graph(self, inputs, operation_fn=lambda op: op, call_fn=None):
        # Keras's graph run keeps every intermediate until the end; kcnn's
        # releases each after its last use (why: `run_graph_releasing`), and on
        # torch computes activations into a tensor nothing else reads
        # (`kcnn.layers.inplace`). `call_fn` (symbolic execution) keeps Keras's.
        if call_fn is not None:
            return super()._run_through_graph(inputs, operation_fn, call_fn)
        overwrite = None
        if keras.backend.backend() == "torch":
            overwrite = functools.partial(inplace.overwrite,
                                          inference=operation_fn is internal.inference_call)
        return internal.run_graph_releasing(self, inputs, operation_fn, overwrite)


def _autograd_off():
    import torch

    return not torch.is_grad_enabled()


def ends_in_softmax(model):
    """Whether the model's last layer applies softmax (kcnn's heads end in a
    separate float32 Activation layer, "predictions"); else it gives logits."""
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


@dataclasses.dataclass(frozen=True)
class Arguments:
    """One builder call's shared arguments, checked when made (`arguments`).

    `keras.applications`' seven, the model's `name`, `init`, the `family` whose
    init rules apply (`kcnn.models.initializers`) and the registered `builder`
    that weight names resolve for (users may rename the model).
    """

    family: str
    builder: str
    name: str
    include_top: bool
    weights: object
    input_tensor: object
    input_shape: object
    pooling: object
    classes: int
    classifier_activation: object
    init: str


# The fields that are arguments of every builder.
_SHARED = tuple(f.name for f in dataclasses.fields(Arguments)
                if f.name not in ("family", "builder"))


def arguments(family, builder, values):
    """The shared arguments among a builder's `values` (its `locals()`), checked.

    The `keras.applications` checks, with clear messages, then `init`'s.
    """
    args = Arguments(family, builder, **{key: values[key] for key in _SHARED})
    if not isinstance(args.include_top, bool):
        raise ValueError(
            f"include_top must be True or False; received include_top={args.include_top!r}."
        )
    if args.pooling not in _POOLINGS:
        raise ValueError(
            f"pooling must be one of None, 'avg' or 'max' for {args.name}; "
            f"received pooling={args.pooling!r}."
        )
    classes = args.classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"classes must be a positive integer for {args.name}; "
            f"received classes={classes!r}."
        )
    if args.weights is not None:
        _check_weights(builder, args.weights, args.include_top, classes)
    try:
        keras.activations.get(args.classifier_activation)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"classifier_activation must be None, the name of a Keras activation "
            f"(such as 'softmax') or a callable; received "
            f"classifier_activation={args.classifier_activation!r}."
        ) from e
    initializers.check(family, args.init, args.name)
    return args


def _check_weights(builder, weights, include_top, classes):
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"weights must be None (random initialisation), a weights name such as "
            f"'imagenet' or the path to a weights file for {builder}; received "
            f"weights={weights!r}."
        )
    entry = hub.find_weights(builder, weights)
    if entry is None:
        if isinstance(weights, str) and weights in hub.ALIASES:
            raise ValueError(f"weights={weights!r}: {hub.available_names(builder)}.")
        if not os.path.isfile(weights):
            raise ValueError(
                f"weights={str(weights)!r}: no such file, and not a weights name "
                f"({hub.available_names(builder)}). weights must be None (random "
                f"initialisation), a weights name or the path to an existing "
                f"weights file (.weights.h5 or a torchvision .pth) for {builder}."
            )
        return
    if include_top and entry.features_only:
        raise ValueError(
            f"weights={weights!r}: the {entry} train the feature extractor only "
            f"(their classifier is not usable); use them with include_top=False."
        )
    if include_top and classes != entry.classes:
        raise ValueError(
            f"weights={weights!r} with include_top=True needs classes="
            f"{entry.classes} (the {entry} have a {entry.classes}-class classifier); "
            f"received classes={classes!r}. For other classes use "
            f"include_top=False and add a head."
        )


def weights_argument(args, argument, default):
    """A builder argument left as None: what the named weights were made with, else `default`.

    GoogLeNet's `transform_input` is on with torchvision's weights, as there.
    """
    entry = hub.find_weights(args.builder, args.weights)
    return entry.builder_arguments.get(argument, default) if entry else default


def check_weights_argument(args, argument, value, default):
    """Refuse a family argument that changes the layers the named weights were made for."""
    entry = hub.find_weights(args.builder, args.weights)
    if entry is None:
        return
    expected = entry.builder_arguments.get(argument, default)
    if value != expected:
        raise ValueError(
            f"{argument}={value!r} does not fit weights={args.weights!r}: the {entry} were "
            f"made with {argument}={expected!r}."
        )


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


def build_input(args, *, default_size, default_channels=3, min_size,
                fixed_size_required):
    """Resolve `input_shape`/`input_tensor` into the model's input tensor.

    Returns `(img_input, (height, width, channels))`. `input_shape` is given in
    the order of `keras.config.image_data_format()`, as in `keras.applications`.
    `fixed_size_required`: the layers need known height and width (a flatten
    before dense layers), so `None` dimensions are refused.
    """
    model_name, input_shape, input_tensor = args.name, args.input_shape, args.input_tensor
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
                    f"{image_shape(default_size, default_size, c)}, or use "
                    f"include_top=False."
                )
        elif not isinstance(dim, int) or dim < min_size:
            raise ValueError(
                f"input_shape={input_shape!r} is too small for {model_name}: height "
                f"and width must be at least {min_size} (or None where the head "
                f"allows it)."
            )
    full_shape = image_shape(h, w, c)
    if input_tensor is None:
        return keras.Input(shape=full_shape, name="input"), (h, w, c)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=full_shape), (h, w, c)
    return input_tensor, (h, w, c)


def image_shape(h, w, c):
    """The input shape (h, w, c) in `keras.config.image_data_format()`'s order."""
    return (h, w, c) if channel_axis() == -1 else (c, h, w)


def global_pool(x, pooling, name="pool"):
    """Apply the `pooling` of `include_top=False` (None keeps the feature map)."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=f"{name}_avg")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=f"{name}_max")(x)
    return x


def pooled_head(args, *, dense_name, dropout=0.0, dropout_name="dropout",
                pool_name="avgpool"):
    """The head of the global-pooling families (ResNet, DenseNet, ...), for `family_model`.

    Global average pooling, dropout when `dropout` > 0 and the classifier,
    named as torchvision names its modules.
    """

    def head(x):
        x = keras.layers.GlobalAveragePooling2D(name=pool_name)(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=dropout_name)(x)
        return classifier(x, args.classes, args.classifier_activation, name=dense_name)

    return head


def classifier(x, classes, classifier_activation, name, activation_name="predictions"):
    """The last dense layer `name`; the activation is a separate layer kept in float32.

    Keeping the activation apart (`activation_name`) keeps logits reachable
    (`model.get_layer(name)`).
    """
    # Under a mixed policy the logits are computed in float32 too, so that
    # losses and softmax see full precision, as Keras's mixed-precision guide does.
    mixed = keras.config.dtype_policy().name.startswith("mixed")
    x = keras.layers.Dense(classes, name=name, dtype="float32" if mixed else None,
                           **initializers.dense(x.shape[-1], classes))(x)
    if classifier_activation is not None:
        x = keras.layers.Activation(classifier_activation, dtype="float32",
                                    name=activation_name)(x)
    return x


def family_model(args, img_input, hwc, *, features, head, preprocessing):
    """The ending every family shares: features, then the head or `pooling`, then the model.

    `features(img_input)` and `head(features)` build their layers under the
    family's `init` rules; without the top, `pooling` replaces the head. The
    result is a `Model` with its metadata record, loaded with `args.weights`.
    """
    with initializers.scheme(args.family, args.init):
        x = features(img_input)
        x = head(x) if args.include_top else global_pool(x, args.pooling)
    return make_model(args, img_input, x, hwc, preprocessing)


def make_model(args, img_input, outputs, hwc, preprocessing):
    """Wrap the graph in a `kcnn.models.Model` with metadata; load `args.weights`.

    Named weights bring their preprocessing and, with the top, their class
    names into the metadata. Without the top, a weights file's classifier is
    ignored, as in `keras.applications`.
    """
    inputs = (keras.utils.get_source_inputs(args.input_tensor)
              if args.input_tensor is not None else img_input)
    entry = hub.find_weights(args.builder, args.weights)
    if entry is not None:
        preprocessing = entry.preprocessing
    h, w, c = hwc
    metadata = {
        "input_size": [h, w],
        "channels": c,
        "preprocessing": _fit_channels(_fit_crop(preprocessing, h, w), c),
        "class_names": (list(entry.class_names) if entry is not None and args.include_top
                        else [str(i) for i in range(args.classes)]),
    }
    if entry is not None:
        metadata["weights"] = {"builder": entry.model_name, "tag": entry.tag,
                               "url": entry.url}
    model = Model(inputs, outputs, name=args.name, metadata=metadata)
    if args.weights is not None:
        load_weights(model, args.weights, skip_unmatched=not args.include_top,
                     builder=args.builder)
    return model


def _fit_channels(preprocessing, channels):
    """One mean and std for a one-channel model of an RGB record (ImageNet's).

    The averages of the colour channels' statistics: what a grayscale copy of
    an RGB-trained model (first convolution summed over colours) expects.
    """
    if channels != 1:
        return preprocessing
    fitted = dict(preprocessing)
    for key in ("mean", "std"):
        values = preprocessing.get(key)
        if values and len(values) > 1:
            fitted[key] = [float(sum(values) / len(values))]
    return fitted


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


def load_weights(model, weights, skip_unmatched=False, builder=None):
    """Load named weights, a `.weights.h5` (Keras) or a `.pth` (torchvision) file.

    `builder`: the registered builder that weight names resolve for (default
    `model.name`).
    """
    entry = hub.find_weights(builder or model.name, weights)
    if entry is not None:
        hub.load(model, entry, functools.partial(_reference_model, entry),
                 skip_unmatched=skip_unmatched)
        return
    path = os.fspath(weights)
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


def _reference_model(entry):
    """The builder's model that `entry`'s file converts onto, in float32.

    With the top (unless the weights are features only), the entry's classes,
    the default RGB input and the entry's builder arguments.
    """
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return get_builder(entry.model_name)(
            include_top=not entry.features_only, weights=None, classes=entry.classes,
            classifier_activation=None, **entry.builder_arguments)
    finally:
        keras.config.set_dtype_policy(policy)
