"""Discriminative learning rates: one optimizer step, a rate per group of layers."""

import functools

import keras

from kcnn import _keras_internal as _internal
from kcnn.transfer import stages as _stages

_STALE = ("{name} is asked to update other variables than it was built on ({detail}). "
          "After changing which layers train, compile again and call "
          "optimizer.build(model.trainable_variables); kcnn.transfer.fit_gradually "
          "does both.")

# Options that act across all variables at once, which groups would split.
_UNSUPPORTED = ("use_ema", "loss_scale_factor", "gradient_accumulation_steps",
                "global_clipnorm")


@keras.saving.register_keras_serializable(package="kcnn")
class DiscriminativeOptimizer(keras.optimizers.Optimizer):
    """Any Keras optimizer with its learning rate scaled per group of layers.

    Each group gets its own copy of `optimizer` (same class and settings)
    whose learning rate is this optimizer's learning rate times the group's
    factor, and one `apply` updates every group in the same training step.
    Scaling the rate (not the gradients) is what makes this right for Adam
    and AdamW, whose steps do not scale with the gradient; AdamW's decoupled
    weight decay scales with the group's rate, as in torch's parameter groups.

    The base rate is a float or a schedule read at this optimizer's step
    count, so schedules run on across groups and phases, and callbacks that
    set `optimizer.learning_rate` (ReduceLROnPlateau) scale every group. Each
    group keeps its own step count, so a group that starts training late
    starts with Adam's bias correction of step 1, as torch does per parameter.

    Changing which layers train (gradual unfreezing) needs a new compile and
    `optimizer.build(model.trainable_variables)`: groups already training keep
    their state (a group whose variables changed gets a new inner optimizer
    with the old one's slots copied over by name), new groups start fresh.
    `kcnn.transfer.fit_gradually` does this between phases.

    Works inside `model.fit` on TensorFlow, JAX (stateless) and PyTorch.

    Args:
        optimizer: a Keras optimizer instance, name ("adamw") or config: the
            template of every group. Its learning rate is the base rate
            unless `learning_rate` is given. EMA, loss scaling, gradient
            accumulation and `global_clipnorm` act across all variables and are
            refused (per-variable `clipnorm`/`clipvalue` are fine).
        groups: a list of `(layer names, factor)` pairs: a variable belongs to
            the group of the layer named by the first part of its path
            (`"conv1/kernel"` -> `conv1`). Variables of other layers train at
            the base rate.
        learning_rate: the base rate (float or schedule); default: the
            template's.
    """

    def __init__(self, optimizer, groups, learning_rate=None,
                 name="discriminative_optimizer"):
        template = _template(optimizer)
        groups = _check_groups(groups)
        if learning_rate is None:
            learning_rate = template.get_config()["learning_rate"]
            if isinstance(learning_rate, dict):
                learning_rate = keras.optimizers.schedules.deserialize(learning_rate)
        super().__init__(learning_rate=learning_rate, name=name)
        self._groups = groups
        self._template_config = keras.optimizers.serialize(template)
        self._inner_config = template.get_config()
        self._template_class = type(template)
        self._layer_group = {layer: i for i, (names, _) in enumerate(groups)
                             for layer in names}
        self._inner = _Inner()  # group index (len(groups): the rest) -> optimizer
        self._group_of = {}  # variable key -> group index

    @property
    def factors(self):
        """The learning-rate factor of each group, in order."""
        return [factor for _, factor in self._groups]

    def group_learning_rate(self, index):
        """The current learning rate of group `index`."""
        factor = self._groups[index][1] if index < len(self._groups) else 1.0
        return keras.ops.multiply(self.learning_rate, factor)

    def group_optimizer(self, index):
        """The optimizer of group `index` (`len(groups)`: the other layers);
        None until the group first has variables to train."""
        return self._inner.get(index)

    def build(self, variables):
        """Build on the variables that train now; may be called again after
        trainable flags change (see the class docstring)."""
        variables = list(variables)
        _internal.forget_built_variables(self)
        super().build(variables)
        by_group = {}
        self._group_of = {}
        for variable in variables:
            index = self._layer_group.get(variable.path.split("/")[0], len(self._groups))
            self._group_of[_internal.variable_key(self, variable)] = index
            by_group.setdefault(index, []).append(variable)
        for index, group in sorted(by_group.items()):
            old = self._inner.get(index)
            if old is not None and self._keys(_internal.built_variables(old)) \
                    == self._keys(group):
                continue  # the same variables: keep the optimizer as it is
            new = self._make_inner(index)
            new.build(group)
            if old is not None:
                _copy_state(old, new)
            self._inner[index] = new
        self.built = True

    @property
    def variables(self):
        inner = [v for index in self._inner for v in self._inner[index].variables]
        return super().variables + inner

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        built_on = len(_internal.built_variables(self))
        if len(trainable_variables) != built_on:
            raise ValueError(_STALE.format(
                name=self.name, detail=f"{len(trainable_variables)} variables train, it "
                f"was built on {built_on}"))
        return super().stateless_apply(optimizer_variables, grads, trainable_variables)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:  # from stateless_apply (JAX)
            variables = _internal.built_variables(self)
        else:
            variables = list(trainable_variables)
            if not self.built:
                with keras.name_scope(self.name, caller=self):
                    self.build(variables)
            unknown = [v.path for v in variables if not _internal.is_built_on(self, v)]
            if unknown:
                raise ValueError(_STALE.format(name=self.name,
                                               detail=f"it was not built on {unknown[:3]}"))
        grouped = {}
        for grad, variable in zip(grads, variables):
            if grad is None:
                continue
            index = self._group_of[_internal.variable_key(self, variable)]
            pair = grouped.setdefault(index, ([], []))
            pair[0].append(grad)
            pair[1].append(variable)
        with keras.name_scope(self.name, caller=self):
            for index in sorted(grouped):
                self._inner[index].apply(*grouped[index])
        self.iterations.assign_add(1)

    def get_config(self):
        config = super().get_config()
        return {"name": config["name"], "learning_rate": config["learning_rate"],
                "optimizer": self._template_config,
                "groups": [[list(names), factor] for names, factor in self._groups]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects)
        config["optimizer"] = keras.optimizers.deserialize(
            config["optimizer"], custom_objects=custom_objects)
        return cls(**config)

    def _keys(self, variables):
        return [_internal.variable_key(self, v) for v in variables]

    def _make_inner(self, index):
        config = dict(self._inner_config)
        config.update(name=f"{self.name}_group{index}",
                      learning_rate=functools.partial(self.group_learning_rate, index))
        return self._template_class.from_config(config)


def discriminative_optimizer(model, optimizer="adamw", *, backbone=0.1, decay=1.0,
                             learning_rate=None):
    """A `DiscriminativeOptimizer` with one group per stage of `model`.

    The head trains at the base rate; the last stage at `backbone` times it,
    and each earlier stage at `decay` times the stage after it (ULMFiT used
    decay 1/2.6). See `kcnn.transfer.stages` for the stages.

    Args:
        model: the model to train.
        optimizer: the template optimizer (instance or name), e.g.
            `keras.optimizers.AdamW(1e-3)`.
        backbone: the last stage's rate factor, > 0.
        decay: the factor between consecutive stages, in (0, 1].
        learning_rate: the base rate (default: the template's).
    """
    for argument, value, upper in (("backbone", backbone, None), ("decay", decay, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                or (upper is not None and value > upper):
            allowed = "a number > 0" if upper is None else f"a number in (0, {upper}]"
            raise ValueError(f"{argument} must be {allowed}; received "
                             f"{argument}={value!r}.")
    groups = [(_stages.head_layers(model), 1.0)]
    for i, names in enumerate(reversed(list(_stages.stages(model).values()))):
        groups.append((names, float(backbone) * float(decay) ** i))
    return DiscriminativeOptimizer(optimizer, groups, learning_rate=learning_rate)


def _template(optimizer):
    if isinstance(optimizer, (str, dict)):
        try:
            optimizer = keras.optimizers.get(optimizer)
        except ValueError as e:
            raise ValueError(f"optimizer must be a Keras optimizer, its name or its "
                             f"config; received optimizer={optimizer!r}.") from e
    if not isinstance(optimizer, keras.optimizers.Optimizer) or isinstance(
            optimizer, (DiscriminativeOptimizer, keras.optimizers.LossScaleOptimizer)):
        raise ValueError(f"optimizer must be a Keras optimizer (not a wrapper); received "
                         f"optimizer={optimizer!r}.")
    for option in _UNSUPPORTED:
        if getattr(optimizer, option, None):
            raise ValueError(
                f"DiscriminativeOptimizer does not support {option} on the inner "
                f"optimizer (it acts across all variables, which the groups split); "
                f"received {option}={getattr(optimizer, option)!r}.")
    return optimizer


def _check_groups(groups):
    checked, seen = [], {}
    if not isinstance(groups, (list, tuple)):
        raise ValueError(f"groups must be a list of (layer names, factor) pairs; "
                         f"received groups={groups!r}.")
    for group in groups:
        try:
            names, factor = group
        except (TypeError, ValueError):
            raise ValueError(f"groups must be a list of (layer names, factor) pairs; "
                             f"received the entry {group!r}.") from None
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"A group's layer names must be a list of str; received "
                             f"{names!r}.")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
            raise ValueError(f"A group's factor must be a number > 0; received "
                             f"{factor!r} for layers {list(names)[:3]}.")
        for name in names:
            if name in seen:
                raise ValueError(f"Layer {name!r} is in two groups ({seen[name]!r} and "
                                 f"{factor!r}); each layer has one rate.")
            seen[name] = factor
        checked.append((tuple(names), float(factor)))
    return checked


class _Inner:
    """Group index -> inner optimizer.

    Not a dict: Keras's saving walk enters dicts and would save each inner
    optimizer a second time; the wrapper saves their variables itself
    (`variables`), which is also what JAX's stateless step reads.
    """

    def __init__(self):
        self._by_index = {}

    def get(self, index):
        return self._by_index.get(index)

    def __setitem__(self, index, optimizer):
        self._by_index[index] = optimizer

    def __getitem__(self, index):
        return self._by_index[index]

    def __iter__(self):
        return iter(sorted(self._by_index))


def _copy_state(old, new):
    """Copy optimizer variables from `old` to `new` by name (slots, step count).

    Slot names hold the model variable's path (`conv1_kernel_momentum`), so a
    variable keeps its state whatever else joined the group.
    """
    by_name = {}
    for variable in old.variables:
        by_name.setdefault(variable.name, []).append(variable)
    for variable in new.variables:
        match = by_name.get(variable.name, [])
        if len(match) == 1 and tuple(match[0].shape) == tuple(variable.shape):
            variable.assign(match[0].value)
