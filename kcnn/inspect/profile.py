"""Per-layer parameters, multiply-accumulates and receptive fields, from the graph alone.

`profile` walks a functional model's graph (nested models included) and reads
every layer's output shape from its symbolic tensors; nothing runs, so a model
built without weights (`profile("vgg16")` builds one) is profiled just as well.

Conventions:
- `macs` counts the multiply-accumulates of convolutions (grouped, depthwise
  and separable included) and dense layers, per image, without biases: the
  convention of the papers, of fvcore and of torchvision's "GFLOPS" (which are
  GMACs). `flops` is 2 x `macs`.
- The rows of other layers show their own work, not counted in the totals: one
  operation per output element for batch norm and activations, `size` for LRN
  (its window of squares), the window for pooling (the whole map for global
  pooling), one per extra input for element-wise merges.
- The receptive field is the theoretical one, padding included: a layer with
  kernel k, stride s and dilation d gives r_out = r_in + d (k - 1) j_in and
  j_out = s j_in, from r = j = 1 at the input. Merges take the largest field of
  their inputs (and the jump of the inputs at the output's resolution); global
  pooling and flattening see the whole map; adaptive pooling counts its largest
  bin and largest step. Other layers that keep the spatial size pass both on;
  after one that changes it in a way not listed here, both are unknown (None).
"""

import collections
import contextlib
import functools
import math

import keras

from kcnn import _keras_internal
from kcnn.inspect import _costs, _graph
from kcnn.layers.lrn import LocalResponseNormalization
from kcnn.layers.pooling import TorchMaxPooling2D
from kcnn.loading import is_keras_path, load_model

_WINDOW_POOLS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                 TorchMaxPooling2D)
_ADAPTIVE_POOLS = (keras.layers.AdaptiveAveragePooling2D,
                   keras.layers.AdaptiveMaxPooling2D)
_GLOBAL_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
_ELEMENTWISE_MERGES = (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply,
                       keras.layers.Average, keras.layers.Maximum, keras.layers.Minimum)
_ONE_OP_PER_ELEMENT = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                       keras.layers.Activation, keras.layers.ReLU,
                       keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ELU,
                       keras.layers.Softmax, keras.layers.Rescaling,
                       keras.layers.Normalization)
# Layers that never mix positions: the field and jump pass through unchanged.
_POINTWISE = _ONE_OP_PER_ELEMENT + (
    keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.Identity,
    keras.layers.ZeroPadding2D, keras.layers.Cropping2D, keras.layers.Concatenate,
    keras.layers.InputLayer, LocalResponseNormalization) + _ELEMENTWISE_MERGES


class Profile:
    """The result of `profile`: one row per layer call and the model's totals.

    Attributes:
        rows: list of dicts with `name` (nested layers as "outer/inner"),
            `type`, `output_shape` (without the batch dimension; a list of
            shapes for several outputs), `params` (the layer's weights,
            counted at its first call), `macs`, `receptive_field` and `jump`
            (ints, (height, width) tuples where they differ, None where
            unknown or, for the jump, where the output has no spatial axes)
            and `counted` (whether `macs` is part of the total).
        params: all weights, as `model.count_params()` (batch-norm statistics
            included).
        trainable_params: the trainable weights (torchvision's parameter count).
        macs: multiply-accumulates of the convolutions and dense layers for one
            image.
        flops: 2 x `macs`.
        input_shape: the input shape profiled, without the batch dimension.
    """

    def __init__(self, name, input_shape, rows, params, trainable_params):
        self.name = name
        self.input_shape = input_shape
        self.rows = rows
        self.params = params
        self.trainable_params = trainable_params
        self.macs = sum(row["macs"] for row in rows if row["counted"])
        self.flops = 2 * self.macs

    def __repr__(self):
        return (f"<Profile {self.name}: {self.params:,} parameters, "
                f"{_scaled(self.macs)}MACs at {_shape_text(self.input_shape)}>")

    def __str__(self):
        header = ("layer", "type", "output shape", "params", "MACs",
                  "receptive field", "jump")
        lines = [header]
        for row in self.rows:
            macs = f"{row['macs']:,}" if row["counted"] else (
                f"({row['macs']:,})" if row["macs"] else "")
            lines.append((row["name"], row["type"], _shape_text(row["output_shape"]),
                          f"{row['params']:,}", macs,
                          _pair_text(row["receptive_field"]), _pair_text(row["jump"])))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        right = (3, 4, 5, 6)
        text = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                          for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
                for line in lines]
        text.insert(1, "-" * len(text[0]))
        text += [
            "-" * len(text[0]),
            f"{self.name} at {_shape_text(self.input_shape)}: "
            f"{self.params:,} parameters ({self.trainable_params:,} trainable), "
            f"{_scaled(self.macs)}MACs, {_scaled(self.flops)}FLOPs",
            "MACs count convolutions and dense layers; in parentheses: other "
            "layers' work, not in the total.",
        ]
        return "\n".join(text)


Costs = collections.namedtuple("Costs", ["params", "trainable_params", "macs"])


def profile(model, input_shape=None):
    """Per-layer parameters, multiply-accumulates and receptive fields of a model.

    Args:
        model: a functional or Sequential Keras model, or the name of a kcnn
            builder (which is then built at its reference size, or at
            `input_shape`, without allocating its weights).
        input_shape: the input shape to profile at, without the batch
            dimension and in the order of the image data format, such as
            (224, 224, 3); needed where the model's input size is unknown,
            (None, None, 3). Default: the model's own.

    Returns:
        A `Profile`: print it for the table; `params`, `macs`, `flops` and
        `rows` for code (see the module docstring for the conventions).
    """
    if is_keras_path(model):
        model = load_model(model)
    if isinstance(model, str):
        return _profile_builder(model, input_shape)
    functional = _graph.functional(model)
    graph_input = spec = _graph.single_input(model, "profile")
    if input_shape is not None:
        shape = tuple(input_shape)
        if len(shape) != len(spec.shape) - 1:
            raise ValueError(
                f"input_shape must give the {len(spec.shape) - 1} dimensions of one "
                f"example of {model.name!r} (no batch dimension); received "
                f"input_shape={input_shape!r}."
            )
        spec = keras.KerasTensor((None,) + shape, dtype=spec.dtype)
    if any(d is None for d in spec.shape[1:]):
        raise ValueError(
            f"{model.name!r} takes input of unknown size {tuple(spec.shape[1:])}: "
            f"pass input_shape with every dimension, such as "
            f"input_shape={_example_shape(spec.shape[1:])}."
        )
    walk = _Walk(_graph.data_format(model))
    walk.start(graph_input, spec)
    walk.run(functional, prefix="")
    return Profile(model.name, tuple(spec.shape[1:]), walk.rows, walk.params,
                   walk.trainable_params)


def model_costs(name):
    """`Costs(params, trainable_params, macs)` of a kcnn builder at its reference size.

    Read from a table for the registered builders (building every model's graph
    takes 10-20 s; tests/inspect/test_profile.py checks the table against
    `computed_costs`, and `costs_table_source()` rewrites it); other names are
    computed.
    """
    if name in _costs.COSTS:
        return Costs(*_costs.COSTS[name])
    return computed_costs(name)


@functools.lru_cache(maxsize=None)
def computed_costs(name):
    """`Costs` of a kcnn builder from its graph, built without its weights."""
    p = profile(name)
    return Costs(p.params, p.trainable_params, p.macs)


def costs_table_source():
    """The text of kcnn/inspect/_costs.py for the registered builders."""
    from kcnn.registry import list_models

    lines = ['"""Parameters and multiply-accumulates of the builders at their reference size.',
             "",
             "Generated by `kcnn.inspect.profile.costs_table_source()`; checked by",
             'tests/inspect/test_profile.py. name -> (params, trainable_params, macs)."""',
             "",
             "COSTS = {"]
    for name in list_models():
        lines.append(f"    {name!r}: {tuple(computed_costs(name))!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _profile_builder(name, input_shape):
    from kcnn.registry import create_model

    kwargs = {} if input_shape is None else {"input_shape": input_shape}
    with without_weights():
        model = create_model(name, **kwargs)
    return profile(model)


@contextlib.contextmanager
def without_weights():
    """Build models whose variables have shapes but no values.

    Keras defers a variable's initialisation inside a `StatelessScope` and keeps
    it on a list of variables to initialise on leaving the scope; with
    `initialize_variables=False` nothing is initialised, and the list is put back
    as it was, so a later scope never allocates these. Models built here are for
    their graphs and shapes only (`profile`, `count_params()`): their variables
    hold no values, so do not train, save or run them.

        with kcnn.inspect.without_weights():
            model = kcnn.vgg16(classes=10)
        print(kcnn.profile(model))
    """
    pending = _keras_internal.uninitialized_variables()
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        _keras_internal.set_uninitialized_variables(pending)


class _Walk:
    """Shapes, costs and receptive fields, node by node, in graph order."""

    def __init__(self, data_format):
        self.data_format = data_format
        self.specs = {}    # id(graph tensor) -> KerasTensor at the profiled shape
        self.fields = {}   # id(graph tensor) -> (field, jump), (h, w) pairs or None
        self.rows = []
        self.seen = set()  # layers whose weights are already counted
        self.params = 0
        self.trainable_params = 0

    def start(self, tensor, spec):
        self.specs[id(tensor)] = spec
        self.fields[id(tensor)] = ((1, 1), (1, 1))
        layer = _keras_internal.producer(tensor)
        self._add_row(layer, layer.name, [spec], 0, False, ((1, 1), (1, 1)))

    def run(self, functional, prefix):
        by_depth = _keras_internal.nodes_by_depth(functional)
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if node.is_input:
                    continue
                self._visit(node, prefix)

    def _visit(self, node, prefix):
        layer = node.operation
        inputs = node.input_tensors
        in_specs = [self.specs[id(t)] for t in inputs]
        if isinstance(layer, keras.Model):
            self._enter(layer, node, in_specs, prefix)
            return
        if all(spec is t for spec, t in zip(in_specs, inputs)):
            out_specs = node.outputs
        else:
            args, kwargs = node.arguments.fill_in(self.specs)
            out_specs = keras.tree.flatten(layer.compute_output_spec(*args, **kwargs))
        for t, spec in zip(node.outputs, out_specs):
            self.specs[id(t)] = spec
        in_fields = [self.fields[id(t)] for t in inputs]
        field = self._field(layer, in_specs, in_fields, out_specs[0])
        for t in node.outputs:
            self.fields[id(t)] = field
        macs, counted = _macs(layer, in_specs, out_specs, self.data_format)
        self._add_row(layer, prefix + layer.name, out_specs, macs, counted, field)

    def _enter(self, model, node, in_specs, prefix):
        """A nested model: its layers' rows, named "outer/inner"."""
        inner = _graph.functional(model, "a nested model")
        for outer_t, inner_t, spec in zip(node.input_tensors, inner.inputs, in_specs):
            self.specs[id(inner_t)] = spec
            self.fields[id(inner_t)] = self.fields[id(outer_t)]
        self.run(inner, prefix=f"{prefix}{model.name}/")
        for outer_t, inner_t in zip(node.outputs, inner.outputs):
            self.specs[id(outer_t)] = self.specs[id(inner_t)]
            self.fields[id(outer_t)] = self.fields[id(inner_t)]

    def _add_row(self, layer, name, out_specs, macs, counted, field):
        params = 0
        if id(layer) not in self.seen:
            self.seen.add(id(layer))
            params = layer.count_params() if layer.built else 0
            self.params += params
            self.trainable_params += sum(math.prod(w.shape) for w in layer.trainable_weights)
        shapes = [tuple(s.shape[1:]) for s in out_specs]
        rf, jump = field
        self.rows.append({
            "name": name,
            "type": type(layer).__name__,
            "output_shape": shapes[0] if len(shapes) == 1 else shapes,
            "params": int(params),
            "macs": int(macs),
            "receptive_field": _collapse(rf),
            "jump": _collapse(jump),
            "counted": counted,
        })

    def _field(self, layer, in_specs, in_fields, out_spec):
        """(field, jump) of the layer's output, each an (h, w) pair or None."""
        fields = [f for f, _ in in_fields]
        if any(f is None for f in fields):
            return None, None
        field = tuple(max(f[i] for f in fields) for i in (0, 1))
        out_hw = self._spatial(out_spec)
        # The jump of the inputs at the output's resolution (a broadcast 1x1
        # input, such as squeeze-excitation's scale, has a coarser one).
        same = [j for spec, (_, j) in zip(in_specs, in_fields)
                if self._spatial(spec) == out_hw and j is not None]
        jumps = same or [j for _, j in in_fields if j is not None]
        jump = tuple(max(j[i] for j in jumps) for i in (0, 1)) if jumps else None
        in_hw = self._spatial(in_specs[0])
        window = _window(layer, in_hw)
        if window is not None and jump is not None:
            kernel, strides = window
            field = tuple(f + (k - 1) * j for f, k, j in zip(field, kernel, jump))
            jump = tuple(j * s for j, s in zip(jump, strides))
        elif not isinstance(layer, _POINTWISE) and in_hw is not None and out_hw != in_hw:
            whole_map = isinstance(layer, _GLOBAL_POOLS) or (
                isinstance(layer, keras.layers.Flatten) and out_hw is None)
            if not whole_map or jump is None:
                return None, None
            field = tuple(f + (n - 1) * j for f, n, j in zip(field, in_hw, jump))
            jump = tuple(j * n for j, n in zip(jump, in_hw))
        if out_hw is None:
            jump = None
        return field, jump

    def _spatial(self, spec):
        return _graph.spatial(spec.shape, self.data_format)


def _window(layer, in_hw):
    """(kernel, strides) of a sliding-window layer, each an (h, w) pair, or None."""
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                          keras.layers.SeparableConv2D)):
        kernel = tuple(d * (k - 1) + 1 for k, d in zip(layer.kernel_size, layer.dilation_rate))
        return kernel, tuple(layer.strides)
    if isinstance(layer, _WINDOW_POOLS):
        return tuple(layer.pool_size), tuple(layer.strides)
    if isinstance(layer, _ADAPTIVE_POOLS) and in_hw is not None:
        bins = [_adaptive_bins(n, o) for n, o in zip(in_hw, layer.output_size)]
        return tuple(b[0] for b in bins), tuple(b[1] for b in bins)
    return None


def _adaptive_bins(size, out):
    """torch's adaptive bins of `size` into `out`: (largest bin, largest step)."""
    starts = [i * size // out for i in range(out)]
    ends = [-(-(i + 1) * size // out) for i in range(out)]
    steps = [b - a for a, b in zip(starts, starts[1:])] or [size]
    return max(e - s for s, e in zip(starts, ends)), max(steps)


def _macs(layer, in_specs, out_specs, data_format):
    """(work of one call for one image, whether it counts in the total)."""
    out = out_specs[0].shape
    elements = math.prod(out[1:])
    channels_last = getattr(layer, "data_format", data_format) == "channels_last"
    if isinstance(layer, keras.layers.Dense):
        in_features = layer.kernel.shape[0]
        _check_features(layer, in_specs[0].shape[-1], in_features)
        return elements * in_features, True
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # Each input position scatters its channels through the whole kernel.
        inp = in_specs[0].shape
        positions = math.prod(inp[1:3] if channels_last else inp[2:4])
        in_channels = inp[-1 if channels_last else 1]
        return positions * math.prod(layer.kernel_size) * in_channels * layer.filters, True
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                          keras.layers.SeparableConv2D)):
        in_channels = in_specs[0].shape[-1 if channels_last else 1]
        out_channels = out[-1 if channels_last else 1]
        positions = elements // out_channels
        k = math.prod(layer.kernel_size)
        if isinstance(layer, keras.layers.Conv2D):
            _check_features(layer, in_channels // layer.groups, layer.kernel.shape[2])
            return positions * out_channels * k * in_channels // layer.groups, True
        depthwise = positions * in_channels * layer.depth_multiplier * k
        if isinstance(layer, keras.layers.SeparableConv2D):
            return depthwise + positions * in_channels * layer.depth_multiplier * out_channels, True
        return depthwise, True
    if isinstance(layer, _WINDOW_POOLS):
        return elements * math.prod(layer.pool_size), False
    if isinstance(layer, _ADAPTIVE_POOLS + _GLOBAL_POOLS):
        return math.prod(in_specs[0].shape[1:]), False
    if isinstance(layer, LocalResponseNormalization):
        return elements * layer.size, False
    if isinstance(layer, _ELEMENTWISE_MERGES):
        return elements * (len(in_specs) - 1), False
    if isinstance(layer, _ONE_OP_PER_ELEMENT):
        return elements, False
    return 0, False


def _check_features(layer, given, expected):
    if given is not None and given != expected:
        raise ValueError(
            f"input_shape does not fit layer {layer.name!r}: it would receive "
            f"{given} features or channels where its weights take {expected}."
        )


def _collapse(pair):
    if pair is None:
        return None
    h, w = (int(v) for v in pair)
    return h if h == w else (h, w)


def _pair_text(value):
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value[0]}x{value[1]}"


def _scaled(count):
    """0.714 G, 417.5 M: giga from 1e8 up, mega below."""
    return f"{count / 1e9:.3f} G" if count >= 1e8 else f"{count / 1e6:.1f} M"


def _shape_text(shape):
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "x".join("?" if d is None else str(d) for d in shape)


def _example_shape(shape):
    return tuple(224 if d is None else d for d in shape)
