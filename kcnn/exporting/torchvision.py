"""torchvision state dicts: a kcnn model's weights for torchvision's own builder.

    kcnn.export(model, "resnet18.pth", format="torchvision")
    # in PyTorch, with no Keras or kcnn:
    net = torchvision.models.resnet18(num_classes=10)
    net.load_state_dict(torch.load("resnet18.pth"), strict=True)

The file is `torch.save` of a dict of tensors, as `model.state_dict()` gives
it: the tensors of `kcnn.weights.torch_state_dict.to_state_dict` (the reverse
of what `weights="x.pth"` loads, from the same table), in the key order of
torchvision's own `state_dict()`, with the batch norms kept (torchvision's
modules have them; nothing is folded). It holds weights only: no graph and no
preprocessing. kcnn's metadata record is in `<path>.json` beside it, and a kcnn
builder reads the file back with `weights=path`.

A model exports when its name is a builder that has a torchvision twin and its
weight names are exactly the keys of that twin's `state_dict()` (read from a
model built on torch's meta device: shapes, no memory). That takes kcnn's
builders with their top at any `classes`, input size or data format, and
GoogLeNet with or without `aux_logits`. Refused, with the builders that work:
LeNet-5 and the simple CNN (no twin), `alexnet(variant="paper")` (the 2012
layers, not torchvision's), a model without its top (torchvision's builders
always have one, so such a file would not load with `strict=True`), and a
renamed or re-headed model. Keras's own exports have no such format: this is
kcnn's, possible because kcnn's layer names are torchvision's module paths.

Shapes that differ from the twin built with `num_classes=classes` (a
`width_mult` other than 1, or a one-channel model) are written as the model has
them, with a warning: a one-channel model's first convolution stays one-channel
(loading three-channel weights sums the colours, which has no inverse), so
torchvision's builder needs its first convolution replaced by a one-channel one
(and MobileNetV2 the same `width_mult`) before `load_state_dict`.
"""

import warnings

from kcnn.exporting import metadata as metadata_lib
from kcnn.weights import catalog
from kcnn.weights.torch_state_dict import to_state_dict

# The builders with a torchvision twin: those torchvision publishes weights for.
TWINS = tuple(sorted({row["model_name"] for row in catalog.ROWS}))


def write(model, out, *, verbose=False):
    """`torch.save` the state dict of `model` for its torchvision twin, and the sidecar."""
    torch, torchvision = _import_torch()
    reference = _twin_state_dict(model, torch, torchvision)
    try:
        state = to_state_dict(model)
    except ValueError as e:  # a layer type that torchvision's twin does not have
        raise _refusal(model, str(e)) from None
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    if missing or unexpected:
        raise _refusal(model, _listed("missing", missing) + _listed("unexpected", unexpected))
    reshaped = [f"{k} {tuple(state[k].shape)} (torchvision: {tuple(reference[k].shape)})"
                for k in reference if tuple(state[k].shape) != tuple(reference[k].shape)]
    if reshaped:
        warnings.warn(
            f"{model.name}: {len(reshaped)} tensors differ in shape from "
            f"torchvision.models.{model.name}(num_classes={_classes(model)}): "
            f"{'; '.join(reshaped[:3])}. The state dict is the model's as it is; build "
            f"torchvision's model to match (the same width_mult; a one-channel first "
            f"convolution for a grayscale model) before load_state_dict.", stacklevel=2)
    tensors = {k: torch.from_numpy(state[k]) for k in reference}
    torch.save(tensors, out)
    metadata_lib.write_json(model, metadata_lib.sidecar(out), "torchvision")
    if verbose:
        print(f"Wrote {len(tensors)} tensors for torchvision.models.{model.name} to {out}")


def open(path):
    """Refused: a state dict has no graph to run."""
    raise ValueError(
        f"{path!r} is a torchvision state dict: it holds weights only, no graph, so it "
        f"cannot predict by itself. Load it into torchvision's builder "
        f"(net = torchvision.models.<name>(num_classes=...); "
        f"net.load_state_dict(torch.load(path))), or into a kcnn builder "
        f"(kcnn.<name>(classes=..., weights=path)); its metadata is in "
        f"{metadata_lib.sidecar(path)!r}.")


def read_metadata(path):
    """kcnn's metadata record of the state dict at `path` (from `<path>.json`), or None."""
    return metadata_lib.read_json(metadata_lib.sidecar(path))


def _import_torch():
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise ImportError(
            "format='torchvision' writes the file with torch and reads the key names of "
            "torchvision's builder: install kcnn's torch extra (pip install 'kcnn[torch]')."
        ) from e
    return torch, torchvision


def _classes(model):
    return int(model.outputs[0].shape[-1])


def _twin_state_dict(model, torch, torchvision):
    """{key: meta tensor} of torchvision's twin of `model`, in torchvision's order."""
    if model.name not in TWINS:
        raise _refusal(model, f"no torchvision builder is named {model.name!r}")
    kwargs = {"weights": None, "num_classes": _classes(model)}
    if model.name == "googlenet":
        has_aux = any(layer.name.startswith("aux1_") for layer in model.layers)
        kwargs.update(aux_logits=has_aux, init_weights=False)
    with torch.device("meta"):
        twin = getattr(torchvision.models, model.name)(**kwargs)
    return twin.state_dict()


def _listed(what, keys):
    if not keys:
        return ""
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return f"{what} {', '.join(keys[:5])}{more}; "


def _refusal(model, why):
    return ValueError(
        f"format='torchvision' writes a state dict that torchvision's own builder loads "
        f"with strict=True, and model {model.name!r} has no torchvision twin "
        f"({why.rstrip('; ')}). It works for the models of these builders, with their "
        f"top (include_top=True) and their own layer names: {', '.join(TWINS)} "
        f"(alexnet with variant='torchvision'). Other models export as 'keras', "
        f"'saved_model', 'onnx', 'litert', 'openvino' or 'pt2'.")
