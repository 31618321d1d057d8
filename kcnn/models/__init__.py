"""The builders, one module per family; importing this registers them all."""

import sys

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

_FAMILIES = ("alexnet", "densenet", "efficientnet", "googlenet", "lenet",
             "mobilenet", "resnet", "simple", "vgg")
# The builders alexnet and googlenet share their module's name, so the modules
# are looked up in sys.modules rather than as attributes of this package.
__all__ = ["Model"] + [name for family in _FAMILIES
                       for name in sys.modules[f"kcnn.models.{family}"].__all__]
