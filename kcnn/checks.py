"""Argument checks shared by every public function: one message style everywhere.

Each check raises `ValueError` naming the argument, the value received and what
is allowed, and returns the value normalised (a numpy integer becomes an int),
so a caller writes `epochs = checks.positive_int("epochs", epochs)`. Deeper code
trusts what passed these checks.

This module imports nothing of kcnn and nothing heavier than numpy, so every
layer of the package (models, data, training, the command line) can use it.
"""

import math
import numbers

import numpy as np


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def int_at_least(name, value, low, *, optional=False):
    """`value` as an int >= `low` (or None when `optional`)."""
    if optional and value is None:
        return None
    if not _is_int(value) or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        if optional:
            what += " or None"
        raise ValueError(f"{name} must be {what}; received {name}={value!r}.")
    return int(value)


def positive_int(name, value, *, optional=False):
    """`value` as an int >= 1 (or None when `optional`)."""
    return int_at_least(name, value, 1, optional=optional)


def positive_number(name, value, *, optional=False):
    """`value` as a finite float > 0 (or None when `optional`)."""
    if optional and value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not value > 0):
        what = "a positive number" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {what}; received {name}={value!r}.")
    return float(value)


def one_of(name, value, allowed):
    """`value`, which must be one of `allowed` (compared with ==, never coerced)."""
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; "
                         f"received {name}={value!r}.")
    return value
