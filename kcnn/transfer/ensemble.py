"""Ensembles and test-time augmentation as single Keras models."""

import keras
from keras import ops

from kcnn import checks
from kcnn.loading import as_model
from kcnn.models import _common
from kcnn.models._common import Model
from kcnn.transfer.head import outputs_probabilities

TTA_MODES = ("flip", "ten_crop")


def ensemble(models, *, name="ensemble"):
    """One model whose output is the mean of the members' class probabilities.

    Each member becomes a nested model named `member_0`, `member_1`, ... so
    members built by the same builder (same layer names, which one functional
    model refuses) sit side by side; they share their layers and weights with
    the models given. A member that outputs logits (no softmax at the end) is
    put through a softmax first; a member with several outputs (GoogLeNet
    with auxiliary heads) contributes its first. The AlexNet paper averaged
    the predictions of five and seven such networks.

    Args:
        models: two or more Keras models with the same input shape and the
            same number of classes.
        name: the ensemble's name.

    Returns:
        A `kcnn.models.Model` with the first member's metadata; it saves and
        loads as one `.keras` file.
    """
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)) \
            or len(models) < 2:
        raise ValueError(f"models must be a list of two or more Keras models (or .keras "
                         f"paths); received models={models!r}.")
    models = [as_model(m, argument=f"models[{i}]") for i, m in enumerate(models)]
    shapes = {tuple(m.inputs[0].shape[1:]) for m in models}
    if len(shapes) != 1 or any(len(m.inputs) != 1 for m in models):
        raise ValueError(f"The members of an ensemble need one input of the same shape; "
                         f"received input shapes {sorted(map(str, shapes))}.")
    classes = {int(m.outputs[0].shape[-1]) for m in models}
    if len(classes) != 1:
        raise ValueError(f"The members of an ensemble need the same number of classes; "
                         f"received {sorted(classes)}.")
    inputs = keras.Input(shape=models[0].inputs[0].shape[1:], name="input")
    outputs = [_probabilities(m, f"member_{i}", inputs) for i, m in enumerate(models)]
    mean = keras.layers.Average(name="mean", dtype="float32")(outputs)
    return Model(inputs, mean, name=name, metadata=_metadata(models[0]))


def tta(model, mode="flip", *, input_size=None, name=None):
    """`model` wrapped to average its probabilities over test-time views.

    mode="flip": each image and its horizontal reflection (2 views).
    mode="ten_crop": the AlexNet paper's 10 crops of `model`'s input size
    from a larger image: the four corners, the centre, and their horizontal
    reflections, in the order of `kcnn.data.augment.ten_crop` (the same
    patches as torchvision's `TenCrop`). The wrapper's input is that larger
    image: `input_size` (height, width), by default the shorter side the
    model's preprocessing resizes to (256 for a 224 crop). Its metadata says
    so, so `kcnn.evaluate` and `kcnn.predict` feed it whole resized images.

    The views go through `model` as one batch, in-graph on every backend.
    Logits are turned into probabilities (softmax) before averaging.
    """
    model = as_model(model)
    if not isinstance(model, keras.Model) or len(getattr(model, "inputs", []) or []) != 1:
        raise ValueError(f"model must be a Keras model with one input; received "
                         f"{model!r}.")
    if mode not in TTA_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, TTA_MODES))}; "
                         f"received mode={mode!r}.")
    shape = tuple(model.inputs[0].shape[1:])
    height, width, channels = _common.spatial_and_channels(shape)
    metadata = _metadata(model)
    if mode == "flip":
        if input_size is not None:
            raise ValueError("input_size applies to mode='ten_crop' only; the flip "
                             f"wrapper takes the model's own input; received "
                             f"input_size={input_size!r}.")
        views = AugmentedViews(mode="flip")
        input_shape = shape
    else:
        if height is None or width is None:
            raise ValueError(f"mode='ten_crop' needs a model with a fixed input size; "
                             f"{model.name} takes {shape}.")
        input_size = _input_size(input_size, metadata, height, width)
        views = AugmentedViews(mode="ten_crop", crop=(height, width))
        input_shape = _common.image_shape(input_size[0], input_size[1], channels)
        record = dict(metadata.get("preprocessing") or {})
        if record:  # whole images resized as before, no longer cropped to the model's size
            record.update(crop=input_size[0] if input_size[0] == input_size[1]
                          else list(input_size),
                          resize=min(input_size) if record.get("resize") else None)
            metadata["preprocessing"] = record
        metadata["input_size"] = list(input_size)
    inputs = keras.Input(shape=input_shape, name="input")
    x = views(inputs)
    x = _probabilities(model, "member", x)
    outputs = ViewMean(views.count, name="mean")(x)
    return Model(inputs, outputs, name=name or f"{model.name}_tta", metadata=metadata)


@keras.saving.register_keras_serializable(package="kcnn")
class AugmentedViews(keras.layers.Layer):
    """Stack test-time views of a batch along the batch axis.

    Input (B, H, W, C) (or channels first); output (V * B, ...) ordered view
    by view: for mode="flip" V = 2 (the images, then their horizontal
    reflections); for mode="ten_crop" V = 10 crops of size `crop` (top-left,
    top-right, bottom-left, bottom-right, centre, then the reflections of
    those five), the centre offset rounded as torchvision and
    `kcnn.data.augment.center_crop` do. `ViewMean(V)` averages them back.
    `data_format` defaults to `keras.config.image_data_format()`.
    """

    def __init__(self, mode="flip", crop=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"data_format must be 'channels_last' or 'channels_first'; "
                             f"received data_format={data_format!r}.")
        if mode not in TTA_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, TTA_MODES))}; "
                             f"received mode={mode!r}.")
        if mode == "ten_crop":
            if crop is None or len(crop) != 2 or not all(
                    isinstance(c, int) and c > 0 for c in crop):
                raise ValueError(f"mode='ten_crop' needs crop=(height, width), positive "
                                 f"integers; received crop={crop!r}.")
            crop = tuple(crop)
        self.mode = mode
        self.crop = crop
        self.data_format = data_format
        self.count = 2 if mode == "flip" else 10

    def call(self, images):
        channels_last = self.data_format == "channels_last"
        h_axis, w_axis = (1, 2) if channels_last else (2, 3)
        if self.mode == "flip":
            return ops.concatenate([images, ops.flip(images, axis=w_axis)], axis=0)
        height, width = images.shape[h_axis], images.shape[w_axis]
        ch, cw = self.crop
        if height is None or width is None or height < ch or width < cw:
            raise ValueError(f"ten_crop needs images of known size at least {self.crop}; "
                             f"received images of shape {images.shape}.")
        top, left = round((height - ch) / 2), round((width - cw) / 2)
        corners = [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw),
                   (top, left)]
        patches = [_crop(images, y, x, ch, cw, channels_last) for y, x in corners]
        patches += [ops.flip(p, axis=w_axis) for p in patches]
        return ops.concatenate(patches, axis=0)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[0] = None if shape[0] is None else shape[0] * self.count
        if self.mode == "ten_crop":
            h_axis = 1 if self.data_format == "channels_last" else 2
            shape[h_axis], shape[h_axis + 1] = self.crop
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode,
                "crop": list(self.crop) if self.crop else None,
                "data_format": self.data_format}


@keras.saving.register_keras_serializable(package="kcnn")
class ViewMean(keras.layers.Layer):
    """The mean over `views` consecutive blocks of the batch: (V * B, ...) -> (B, ...)."""

    def __init__(self, views, **kwargs):
        super().__init__(**kwargs)
        self.views = checks.positive_int("views", views)

    def call(self, x):
        shape = ops.shape(x)
        x = ops.reshape(x, (self.views, -1) + tuple(shape[1:]))
        return ops.mean(x, axis=0)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return (None if batch is None else batch // self.views,) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "views": self.views}


def _crop(images, top, left, height, width, channels_last):
    if channels_last:
        return images[:, top:top + height, left:left + width, :]
    return images[:, :, top:top + height, left:left + width]


def _probabilities(model, name, x):
    """`model` (as a nested model `name`) on `x`, its first output as probabilities."""
    y = keras.Model(model.inputs[0], model.outputs[0], name=name)(x)
    if outputs_probabilities(model):
        return y
    return keras.layers.Softmax(name=f"{name}_softmax", dtype="float32")(y)


def _metadata(model):
    """The model's metadata, less what names its own layers."""
    metadata = dict(getattr(model, "metadata", None) or {})
    metadata.pop("features_layer", None)
    return metadata


def _input_size(input_size, metadata, height, width):
    if input_size is None:
        resize = (metadata.get("preprocessing") or {}).get("resize")
        if not resize or resize < max(height, width):
            raise ValueError(
                f"mode='ten_crop' needs input_size=(height, width), larger than the "
                f"model's input ({height}, {width}): the model's preprocessing names no "
                f"larger resize to crop from.")
        return (resize, resize)
    try:
        size = ((input_size, input_size) if isinstance(input_size, int)
                else tuple(input_size))
        ok = len(size) == 2 and all(isinstance(s, int) for s in size)
    except TypeError:
        ok = False
    if not ok or size[0] < height or size[1] < width:
        raise ValueError(f"input_size must be an integer or (height, width) at least the "
                         f"model's input ({height}, {width}); received "
                         f"input_size={input_size!r}.")
    return size
