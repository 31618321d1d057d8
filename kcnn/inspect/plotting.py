"""PNG drawing shared by kcnn's pictures of models: tile grids and heatmap overlays.

Figures are `matplotlib.figure.Figure` objects written with `savefig`, never
pyplot's: pyplot's figures and `matplotlib.use` are process-wide, and a
Jupyter session whose backend kcnn switched would show no more plots.
"""

import math
import os

import numpy as np


def figure(**kwargs):
    """A new `matplotlib.figure.Figure(**kwargs)`, outside pyplot's figures."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def scale_each(tiles, axes):
    """Each tile scaled to [0, 1] by its own minimum and maximum over `axes`."""
    tiles = np.asarray(tiles, dtype=np.float64)
    lo = tiles.min(axis=axes, keepdims=True)
    hi = tiles.max(axis=axes, keepdims=True)
    return (tiles - lo) / np.maximum(hi - lo, 1e-12)


def tile_grid(sections, path, title=None):
    """Write a PNG of image tiles, one block of rows per section.

    Args:
        sections: a list of `(label, tiles)`: `tiles` is an array (n, h, w)
            (drawn in gray) or (n, h, w, 3) (RGB), with values in [0, 1];
            `label` (None for none) is written above the section's first tile.
        path: the PNG file to write.
        title: the figure's title.

    The grid has ceil(sqrt(n)) columns for the largest section, one inch per
    tile.
    """
    cols = max(1, math.ceil(math.sqrt(max(len(tiles) for _, tiles in sections))))
    rows = [max(1, math.ceil(len(tiles) / cols)) for _, tiles in sections]
    fig = figure(figsize=(cols, sum(rows)))
    axes = fig.subplots(sum(rows), cols, squeeze=False)
    top = 0
    for (label, tiles), n_rows in zip(sections, rows):
        block = axes[top:top + n_rows].ravel()
        for i, ax in enumerate(block):
            ax.axis("off")
            if i < len(tiles):
                tile = tiles[i]
                ax.imshow(tile, cmap=None if tile.ndim == 3 else "gray",
                          vmin=0.0, vmax=1.0)
        if label:
            block[0].set_title(label, loc="left", fontsize=8)
        top += n_rows
    if title:
        fig.suptitle(title)
    _save(fig, path)


def overlay(image, heatmap, path, alpha=0.4, colormap="jet"):
    """Write a PNG of `image` with `heatmap` blended on top, at the image's size.

    Args:
        image: (height, width, channels) with 1 or 3 channels, uint8 pixels
            or floats in [0, 1].
        heatmap: (height, width) with values in [0, 1] (as `kcnn.gradcam`
            returns them).
        path: the PNG file to write.
        alpha: the heatmap's weight in the blend, in [0, 1].

    Returns:
        The blended image, a uint8 array (height, width, 3).
    """
    from matplotlib import colormaps
    from PIL import Image

    image = np.asarray(image)
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (height, width, 1 or 3 channels); received "
                         f"an array of shape {image.shape}.")
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap must have the image's height and width "
                         f"{image.shape[:2]}; received shape {heatmap.shape}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1]; received alpha={alpha!r}.")
    pixels = image.astype(np.float64)
    if image.dtype == np.uint8:
        pixels /= 255.0
    pixels = np.clip(np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels, 0, 1)
    colors = colormaps[colormap](np.clip(heatmap, 0, 1))[..., :3]
    blend = np.rint(255 * ((1 - alpha) * pixels + alpha * colors)).astype(np.uint8)
    _makedirs(path)
    Image.fromarray(blend).save(path)
    return blend


def _save(fig, path):
    _makedirs(path)
    fig.savefig(path, dpi=100)


def _makedirs(path):
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
