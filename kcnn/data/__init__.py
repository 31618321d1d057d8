"""Data sources. For now: scikit-learn's bundled handwritten digits (offline)."""

from kcnn.data.digits import load_digits

__all__ = ["load_digits"]
