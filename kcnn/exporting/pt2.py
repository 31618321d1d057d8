"""PyTorch ExportedProgram (`.pt2`): the model's float input, for `torch.export.load`.

Written on the torch backend (from TensorFlow and JAX the package exports
through the model's `.keras` file in a torch process): `torch.export.export`
of the Keras model, whose layers are `torch.nn.Module`s there, with a dynamic
batch dimension. Keras's own `model.export(format="torch")` does the same but
has no way to add files to the archive, so kcnn calls `torch.export` itself:
kcnn's metadata record is the archive's extra file "kcnn.json".

The file holds ATen operations and the weights only: a process with torch and
nothing else runs it,

    program = torch.export.load("resnet18.pt2").module()
    logits = program(torch.from_numpy(batch))   # (batch, ...) as the model takes it

(tests/export/test_pt2.py loads every export in such a process). The batch
norms arrive folded into the convolutions (`kcnn.fold_batch_norm`).
"""

import numpy as np

from kcnn.exporting import metadata as metadata_lib

EXTRA_FILE = "kcnn.json"


def exported_program(model):
    """`torch.export.export` of `model` (torch backend) with a dynamic batch.

    The example batch has 2 images: torch specializes a dimension of size 1
    to a constant. Also the source of the OpenVINO export on torch.
    """
    import torch

    if len(model.inputs) != 1:
        raise ValueError(f"the .pt2 export takes models with one input; {model.name!r} "
                         f"has {len(model.inputs)}.")
    example = torch.zeros((2,) + tuple(model.inputs[0].shape[1:]), dtype=torch.float32)
    # The model's forward(*args) takes its input as args[0].
    dynamic_shapes = [({0: torch.export.Dim("batch")},)]
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes,
                                   strict=False)


def write(model, out, *, verbose=False):
    import torch

    program = exported_program(model)
    torch.export.save(program, out,
                      extra_files={EXTRA_FILE: metadata_lib.dumps(model, "pt2")})
    if verbose:
        print(f"Saved PyTorch ExportedProgram at {out!r}.")


def open(path):
    """A function of a preprocessed float32 batch to the model's output, in torch."""
    import torch

    module = torch.export.load(path).module()

    def run(x):
        with torch.no_grad():
            y = module(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        return y.detach().cpu().numpy()

    return run


def read_metadata(path):
    """kcnn's record from the archive's extra file, or None if it has none."""
    import torch

    extra = {EXTRA_FILE: ""}
    torch.export.load(path, extra_files=extra)
    text = extra[EXTRA_FILE]
    if isinstance(text, bytes):
        text = text.decode()
    return metadata_lib.loads(text, source=path) if text else None
