"""Custom Keras layers used by kcnn's builders; all registered for `.keras` files."""

from kcnn.layers import conv, lrn, normalization, pooling, regularization
from kcnn.layers.conv import *  # noqa: F401,F403
from kcnn.layers.lrn import LocalResponseNormalization
from kcnn.layers.normalization import BatchNormalization
from kcnn.layers.pooling import *  # noqa: F401,F403
from kcnn.layers.regularization import *  # noqa: F401,F403

__all__ = (["LocalResponseNormalization", "BatchNormalization"] + conv.__all__ + pooling.__all__
           + regularization.__all__)
