"""Package attributes that import their module on first use (PEP 562).

kcnn imports TensorFlow, tensorflow-datasets and keras-tuner only with the
features that need them (tf.data pipelines, training, export, tuning), so that
building, saving, loading and `fit` on arrays work where TensorFlow is not
installed and `import kcnn` stays quick. A package names those features here
instead of importing them.
"""

import importlib
import sys


def attach(package, targets):
    """`__getattr__` and `__dir__` for the module named `package`.

    `targets` maps an attribute to `"module"` (the attribute is that module)
    or `"module:name"` (the module's `name`); the first access imports it and
    binds it on the package, so later ones are plain lookups.
    """

    def __getattr__(name):
        if name not in targets:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = targets[name].partition(":")
        value = importlib.import_module(module)
        if attribute:
            value = getattr(value, attribute)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(targets))

    return __getattr__, __dir__
