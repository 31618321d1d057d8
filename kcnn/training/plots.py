"""PNG plots of a training run: curves, confusion matrix, first-layer filters."""

import keras
import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history, path):
    """Loss and top-1 accuracy per epoch, training and validation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
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
    plt.close(fig)


def confusion_matrix(matrix, class_names, path):
    plt = _pyplot()
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 2)))
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
    plt.close(fig)


def first_layer_filters(model, path, max_filters=64):
    """A grid of the first convolution's kernels, each scaled to [0, 1]."""
    conv = next((layer for layer in model._flatten_layers(include_self=False)
                 if isinstance(layer, keras.layers.Conv2D)), None)
    if conv is None:
        return
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel))  # (kh, kw, in, out)
    kernel = kernel[..., :max_filters]
    lo = kernel.min(axis=(0, 1, 2), keepdims=True)
    hi = kernel.max(axis=(0, 1, 2), keepdims=True)
    kernel = (kernel - lo) / np.maximum(hi - lo, 1e-12)
    n = kernel.shape[-1]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(cols, rows))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            k = kernel[..., i]
            ax.imshow(k if k.shape[-1] == 3 else k[..., 0], cmap=None if k.shape[-1] == 3 else "gray")
    fig.suptitle(f"{conv.name}: {n} filters")
    fig.savefig(path, dpi=100)
    plt.close(fig)
