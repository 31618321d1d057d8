"""Writing command-line options (`kcnn.data.augment.parse_options`'s syntax) and
hypothesis strategies for values no option takes, shared by the property tests
of `augment=` and `--schedule`."""

import math

from hypothesis import strategies as st


def render(value):
    """A value as the command line writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, tuple):
        # "v," is a one-element tuple: without the comma it would be a number
        return ",".join(map(render, value)) + ("," if len(value) == 1 else "")
    return repr(value) if isinstance(value, float) else str(value)


def option(key, value, hyphens=False):
    """The token `key=value` (`key` alone for True); `hyphens` writes `erasing-scale`."""
    key = key.replace("_", "-") if hyphens else key
    return key if value is True else f"{key}={render(value)}"


# Words an option may take as a value (or that parse as something else).
RESERVED = {"true", "yes", "on", "false", "no", "off", "none", "random", "nearest",
            "bilinear", "nan", "inf", "infinity", "min", "max", "rel", "abs", "cos",
            "linear", "imagenet", "svhn"}
words = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda w: w not in RESERVED)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
negative = st.floats(max_value=-1e-6, allow_infinity=False)
