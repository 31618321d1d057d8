"""Weights: reading torchvision state dicts and converting them onto kcnn models.

This package imports no builder: it is handed a built model.
"""

from kcnn.weights.torch_state_dict import load_pth, load_state_dict, read_pth

__all__ = ["load_pth", "load_state_dict", "read_pth"]
