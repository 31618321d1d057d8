"""Weights: torchvision state dicts onto kcnn models, and pretrained weights by name.

- `load_pth`, `load_state_dict`, `read_pth`: convert a torchvision state dict
  onto a model it is handed (this package imports no builder);
  `to_state_dict`: the reverse, a model's weights in torchvision's names and
  layouts (`kcnn.export(model, "m.pth", format="torchvision")` writes it).
- `register`, `list_weights`, `get_weights`, `markdown_table`: the table of
  downloadable weights (torchvision's ImageNet weights for every builder that
  has them, plus any a team registers); `weights="imagenet"` on a builder
  downloads, verifies, converts and caches them (`hub`).
- `preprocess_input`, `decode_predictions`, `IMAGENET_CLASSES`: the ImageNet
  helpers, as in `keras.applications`.
"""

from kcnn.weights.hub import (MIRROR_ENV, WeightEntry, WeightsDownloadError,
                              cache_dir, get_weights, list_weights, markdown_table,
                              register, unregister)
from kcnn.weights.imagenet_classes import IMAGENET_CLASSES
from kcnn.weights.preprocessing import decode_predictions, preprocess_input
from kcnn.weights.torch_state_dict import load_pth, load_state_dict, read_pth, to_state_dict

__all__ = [
    "IMAGENET_CLASSES", "MIRROR_ENV", "WeightEntry", "WeightsDownloadError",
    "cache_dir", "decode_predictions", "get_weights", "list_weights", "load_pth",
    "load_state_dict", "markdown_table", "preprocess_input", "read_pth", "register",
    "to_state_dict", "unregister",
]
