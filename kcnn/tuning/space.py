"""The search space: which hyperparameters a search tries, and over what values.

    kcnn.tuning.search_space({"learning_rate": (1e-4, 1e-2), "optimizer": ["adamw", "sgd"]})
    kcnn.tuning.parse_space(["learning_rate=1e-4:1e-2", "optimizer=adamw,sgd"])  # the same

kcnn tunes four names. `learning_rate` (log scale) and `dropout` are searched
by default; `optimizer` ("adamw" or "sgd", the recipes' two optimizers) and
`weight_decay` (log scale; coupled L2 for "sgd", decoupled for "adamw", as in
`kcnn.training.Recipe`) on request. How the hypermodel applies each value is in
`kcnn.tuning.hypermodel`.
"""

import keras_tuner as kt

HYPERPARAMETERS = ("learning_rate", "dropout", "optimizer", "weight_decay")
OPTIMIZERS = ("adamw", "sgd")
DEFAULT_SPACE = {"learning_rate": (1e-4, 1e-1), "dropout": (0.0, 0.6)}


def search_space(space=None):
    """The `keras_tuner.HyperParameters` to search.

    Args:
        space: one of
            - None: `learning_rate` log-uniform in [1e-4, 1e-1] and `dropout`
              uniform in [0, 0.6];
            - a dict of changes to that, from a name in `HYPERPARAMETERS` to
              `(low, high)`, a range (log scale for learning_rate and
              weight_decay when low > 0, linear for dropout); a list, a choice
              among its values; a single value, fixed at that value; or None,
              not tuned (the builder's and the recipe's own value);
            - a `keras_tuner.HyperParameters`: the whole space, as given.

    Returns:
        A `keras_tuner.HyperParameters`.
    """
    hp = kt.HyperParameters()
    if isinstance(space, kt.HyperParameters):
        unknown = sorted(set(h.name for h in space.space) - set(HYPERPARAMETERS))
        if unknown:
            raise ValueError(f"space holds hyperparameters kcnn does not use: {unknown}; "
                             f"allowed: {', '.join(HYPERPARAMETERS)}.")
        for entry in space.space:
            _check_entry(entry)
        hp.merge(space)
        return hp
    if not (space is None or isinstance(space, dict)):
        raise ValueError(f"space must be None, a dict or a keras_tuner.HyperParameters; "
                         f"received space={space!r}.")
    overrides = dict(space or {})
    unknown = sorted(set(overrides) - set(HYPERPARAMETERS), key=str)
    if unknown:
        raise ValueError(f"space has unknown hyperparameters {unknown}; allowed: "
                         f"{', '.join(HYPERPARAMETERS)}.")
    for name, spec in {**DEFAULT_SPACE, **overrides}.items():
        if spec is not None:
            _declare(hp, name, spec)
    return hp


def parse_space(specs):
    """`NAME=SPEC` strings (`kcnn tune --space`) as a `search_space` dict.

    SPEC is `low:high` (a range), `a,b,...` (a choice), one value (fixed) or
    `none` (not tuned): `["learning_rate=1e-4:1e-2", "dropout=none"]` gives
    `{"learning_rate": (1e-4, 1e-2), "dropout": None}`. Names and values are
    checked by `search_space`.
    """
    space = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or not text:
            raise ValueError(f"--space takes NAME=SPEC, e.g. learning_rate=1e-4:1e-2; "
                             f"received {spec!r}.")
        if text.lower() == "none":
            space[name] = None
        elif ":" in text:
            low, _, high = text.partition(":")
            space[name] = (_number(name, low), _number(name, high))
        elif "," in text:
            space[name] = [_number(name, v) if name != "optimizer" else v
                           for v in text.split(",")]
        else:
            space[name] = text if name == "optimizer" else _number(name, text)
    return space


def _number(name, text):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--space {name}: {text!r} is not a number.") from None


def _declare(hp, name, spec):
    if isinstance(spec, tuple):
        if name == "optimizer":
            raise ValueError(f"space['optimizer'] is a choice: a list such as "
                             f"{list(OPTIMIZERS)}, or one name; received {spec!r}.")
        for value in spec:
            _check_value(name, value)
        if len(spec) != 2 or spec[0] >= spec[1]:
            raise ValueError(f"space[{name!r}] as a range must be (low, high) with low < "
                             f"high; received {spec!r}.")
        log = name in ("learning_rate", "weight_decay") and spec[0] > 0
        hp.Float(name, float(spec[0]), float(spec[1]), sampling="log" if log else "linear")
    elif isinstance(spec, list):
        if not spec:
            raise ValueError(f"space[{name!r}] as a choice needs values; received [].")
        for value in spec:
            _check_value(name, value)
        hp.Choice(name, spec)
    else:
        _check_value(name, spec)
        hp.Fixed(name, spec)


def _check_entry(entry):
    config = entry.get_config()
    values = [config[k] for k in ("min_value", "max_value") if k in config]
    values += list(config.get("values") or [])
    if "value" in config:
        values.append(config["value"])
    for value in values:
        _check_value(entry.name, value)


def _check_value(name, value):
    if name == "optimizer":
        ok = value in OPTIMIZERS
        allowed = f"one of {OPTIMIZERS}"
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        allowed = {"learning_rate": "a number > 0", "dropout": "a rate in [0, 1)",
                   "weight_decay": "a number >= 0"}[name]
        ok = number and {"learning_rate": lambda v: v > 0,
                         "dropout": lambda v: 0 <= v < 1,
                         "weight_decay": lambda v: v >= 0}[name](value)
    if not ok:
        raise ValueError(f"space[{name!r}] must be {allowed} (or a range or list of "
                         f"such); received {value!r}.")
