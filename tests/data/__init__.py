"""Tests of kcnn.data. `make_image_folder` writes a small class-per-folder tree."""

import os

import numpy as np


def write_image(path, size, channels, seed):
    from PIL import Image

    height, width = size
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


def make_image_folder(root, *, per_class=4, corrupt=True, gray_only=False):
    """root/{cats,dogs,fish}/ with JPEGs and PNGs of varied sizes, one grayscale
    PNG among the RGB images (unless gray_only: all grayscale) and, if corrupt,
    one unreadable file. Returns the path of the corrupt file (or None)."""
    seed = 0
    for name in ("dogs", "cats", "fish"):  # unsorted on purpose
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            seed += 1
            size = (20 + 3 * i, 30 - 2 * i)
            ext = "png" if i % 2 else "jpg"
            channels = 1 if gray_only or (name == "dogs" and i == 1) else 3
            write_image(os.path.join(folder, f"{name}{i}.{ext}"), size, channels, seed)
    if not corrupt:
        return None
    bad = os.path.join(root, "cats", "broken.jpg")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return bad
