"""The model registry: builders register themselves by name.

`list_models("resnet*")` and `create_model("resnet50", classes=10)` need no
hand-kept table: every public builder is decorated with `@register`.
"""

import difflib
import fnmatch

from kcnn.weights import hub

_BUILDERS = {}


def register(builder):
    """Decorator that adds a public builder to the registry under its name."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"A model named {name!r} is already registered.")
    _BUILDERS[name] = builder
    return builder


def list_models(pattern="*"):
    """Sorted names of the registered builders matching a shell-style `pattern`."""
    if not isinstance(pattern, str):
        raise ValueError(f"pattern must be a shell-style string such as 'resnet*'; "
                         f"received pattern={pattern!r}.")
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def get_builder(name):
    """The builder function registered as `name`; an unknown name suggests close ones."""
    if not isinstance(name, str) or name not in _BUILDERS:
        close = difflib.get_close_matches(str(name), _BUILDERS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown model name={name!r}.{hint} "
            f"Available: {', '.join(list_models())}."
        )
    return _BUILDERS[name]


def create_model(name, **kwargs):
    """Build the registered model `name`, passing `kwargs` to its builder."""
    return get_builder(name)(**kwargs)


# kcnn.weights imports no builder: its `register` checks names through this module.
hub.check_model_names_with(get_builder)
