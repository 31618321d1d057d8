"""The builders, one module per family; importing this registers them all."""

from kcnn.models import (alexnet, densenet, efficientnet, googlenet, lenet,
                         mobilenet, resnet, simple, vgg)
from kcnn.models._common import Model
from kcnn.models.alexnet import *  # noqa: F401,F403
from kcnn.models.densenet import *  # noqa: F401,F403
from kcnn.models.efficientnet import *  # noqa: F401,F403
from kcnn.models.googlenet import *  # noqa: F401,F403
from kcnn.models.lenet import *  # noqa: F401,F403
from kcnn.models.mobilenet import *  # noqa: F401,F403
from kcnn.models.resnet import *  # noqa: F401,F403
from kcnn.models.simple import *  # noqa: F401,F403
from kcnn.models.vgg import *  # noqa: F401,F403

__all__ = ["Model"] + [
    name
    for module in (alexnet, densenet, efficientnet, googlenet, lenet, mobilenet,
                   resnet, simple, vgg)
    for name in module.__all__
]
