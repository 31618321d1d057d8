"""PNG plots of a training run: curves, confusion matrix, first-layer filters."""

import keras
import numpy as np

from kcnn import _keras_internal
from kcnn.inspect.plotting import figure, scale_each, tile_grid


def training_curves(history, path):
    """Loss and top-1 accuracy per epoch, training and validation."""
    fig = figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "top1")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                ax.plot(range(1, len(values) + 1), values, style,
                        label=("validation " if prefix else "training ") + metric)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def confusion_matrix(matrix, class_names, path):
    n = len(class_names)
    fig = figure(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 2)))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    if n <= 30:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def first_layer_filters(model, path, max_filters=64):
    """A grid of the first convolution's kernels, each scaled to [0, 1].

    Drawn with the feature-map grid of `kcnn.feature_maps`: RGB where the
    kernels see three channels, otherwise their first channel in gray.
    """
    conv = next((layer for layer in _keras_internal.flatten_layers(model, include_self=False)
                 if isinstance(layer, keras.layers.Conv2D)), None)
    if conv is None:
        return
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel))  # (kh, kw, in, out)
    tiles = kernel[..., :max_filters].transpose(3, 0, 1, 2)  # (out, kh, kw, in)
    if tiles.shape[-1] == 3:
        tiles = scale_each(tiles, axes=(1, 2, 3))
    else:
        tiles = scale_each(tiles[..., 0], axes=(1, 2))
    tile_grid([(None, tiles)], path, title=f"{conv.name}: {len(tiles)} filters")


def learning_rate(steps, rates, path, steps_per_epoch=None):
    """The learning rate against the optimizer step (epoch boundaries marked
    on a second axis when `steps_per_epoch` is given)."""
    fig = figure(figsize=(7, 3.5))
    ax = fig.subplots()
    ax.plot(steps, rates, drawstyle="steps-post")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if steps_per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch,
                                                   lambda e: e * steps_per_epoch))
        top.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
