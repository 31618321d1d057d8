"""scikit-learn's 1,797 bundled 8x8 handwritten digits, upsampled: real data, no download."""

import numpy as np


def load_digits(size=28, test_fraction=0.2, seed=0):
    """The digits as uint8 images of `size` x `size` x 1, split stratified.

    Returns `((x_train, y_train), (x_test, y_test))`; pixels are 0..255 (the
    8x8 originals hold 0..16), upsampled bilinearly; labels are int64 0..9.
    The split is stratified by class and fixed by `seed` (80/20 by default).
    """
    from PIL import Image
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8; received size={size!r}.")
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"test_fraction must be in (0, 1); received test_fraction={test_fraction!r}."
        )
    digits = sk_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    images = np.stack([
        np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
        for img in pixels
    ])[..., None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed)
    return (x_train, y_train), (x_test, y_test)
