"""The activations of chosen layers, and a PNG grid of them for one image."""

import os

import keras
import numpy as np

from kcnn import _keras_internal, checks
from kcnn.inspect import _graph, plotting
from kcnn.loading import as_model


def feature_maps(model, images, layers, *, path=None, image_index=0, max_channels=64,
                 batch_size=32):
    """Activations of the named layers for `images`.

    Args:
        model: a functional Keras model with one input.
        images: model input: a float array (N, ...) in the model's layout and
            preprocessing, or one example without the batch axis.
        layers: a layer name (or layer), or a list of them.
        path: if given, a PNG file to write: for the image `image_index`, a
            grid of the first `max_channels` channels of each layer (one block
            of rows per layer), each channel scaled to [0, 1] on its own.
            Every layer drawn must output a feature map (batch, height, width,
            channels in the model's layout).
        batch_size: images per forward pass.

    Returns:
        dict layer name -> numpy array of its output for all images, in the
        model's layout (channels last or first), in the order given.
    """
    model = as_model(model)
    graph_input = _graph.single_input(model, "feature_maps")
    x = _graph.check_images(images, graph_input, "images")
    checks.positive_int("batch_size", batch_size)
    checks.positive_int("max_channels", max_channels)
    names = [layers] if isinstance(layers, (str, keras.layers.Layer)) else list(layers or [])
    if not names:
        raise ValueError(f"layers must name at least one layer; received layers={layers!r}.")
    outputs = [_graph.resolve_layer(model, name, "layers") for name in names]
    names = [_keras_internal.producer(t).name for t in outputs]
    fmt = _graph.data_format(model)
    if path is not None:
        if not isinstance(path, (str, os.PathLike)) \
                or not os.fspath(path).lower().endswith(".png"):
            raise ValueError(f"path must be None or a file name ending in .png; "
                             f"received path={path!r}.")
        _check_drawable(names, outputs, fmt, image_index, len(x), max_channels)
    extractor = keras.Model(graph_input, outputs)
    batches = []
    for i in range(0, len(x), batch_size):
        out = extractor(x[i:i + batch_size], training=False)
        batches.append(out if isinstance(out, (list, tuple)) else [out])
    maps = {name: np.concatenate([np.asarray(keras.ops.convert_to_numpy(b[j]))
                                  for b in batches])
            for j, name in enumerate(names)}
    if path is not None:
        sections = []
        for name in names:
            m = maps[name][image_index]
            if fmt == "channels_last":
                m = m.transpose(2, 0, 1)
            shown = m[:max_channels]
            sections.append((f"{name}: {len(shown)} of {len(m)} channels",
                             plotting.scale_each(shown, axes=(1, 2))))
        title = None
        if len(sections) == 1:
            (title, tiles), = sections
            sections = [(None, tiles)]
        plotting.tile_grid(sections, path, title=title)
    return maps


def _check_drawable(names, outputs, fmt, image_index, n, max_channels):
    for name, tensor in zip(names, outputs):
        if _graph.spatial(tensor.shape, fmt) is None:
            raise ValueError(
                f"layers: {name!r} outputs shape {tuple(tensor.shape)}, not a feature "
                f"map, so it cannot be drawn (path was given); draw only layers with "
                f"(batch, height, width, channels) outputs in {fmt}."
            )
    if isinstance(image_index, bool) or not isinstance(image_index, int) \
            or not 0 <= image_index < n:
        raise ValueError(f"image_index must be an integer in [0, {n}); received "
                         f"image_index={image_index!r}.")
