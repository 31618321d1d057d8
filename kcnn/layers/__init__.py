"""Custom Keras layers used by kcnn's builders; all registered for `.keras` files."""

from kcnn.layers import conv, lrn, pooling, regularization
from kcnn.layers.conv import *  # noqa: F401,F403
from kcnn.layers.lrn import LocalResponseNormalization
from kcnn.layers.pooling import *  # noqa: F401,F403
from kcnn.layers.regularization import *  # noqa: F401,F403

__all__ = (["LocalResponseNormalization"] + conv.__all__ + pooling.__all__
           + regularization.__all__)
