"""OpenVINO IR (`.xml` + `.bin`): the model's float input, for OpenVINO's runtime.

Converted with `openvino.convert_model`, kcnn's own call rather than Keras's
`model.export(format="openvino")`, for three reasons measured here (OpenVINO
2026.4, Keras 3.15.1):
- TensorFlow: Keras converts the same `tf.function`, but OpenVINO's TensorFlow
  frontend keeps the second output of every `IdentityN` that
  `tf.custom_gradient` leaves (Keras's swish), so an EfficientNet-B0 IR had
  49 outputs. Only the function's own outputs are kept here.
- torch: Keras traces with `torch.jit.trace`, which fails on kcnn's LRN (an
  in-place `torch.autograd.Function`: "aten::contiguous_reverseprop") and
  took 15-22 s for a ResNet-18 or EfficientNet-B0; kcnn converts the
  `torch.export` program of its `.pt2` export, with a dynamic batch.
- JAX: Keras goes through jax2tf without native serialization, which JAX
  0.10 no longer has (the graph holds an `XlaCallModule` that OpenVINO cannot
  convert): the package exports from JAX through a TensorFlow process.
Weights are saved in float32 (`ov.save_model` would halve them to float16
by default), and `open` compiles for float32 inference: on CPUs with bfloat16
units (AMX, AVX512-BF16) OpenVINO otherwise runs in bfloat16 by default, which
was 1.6e-3 of the output scale off on LeNet-5 here instead of 2e-7.

Every op kcnn's builders use converts, LRN included (as elementwise ops and
window sums, not OpenVINO's LRN op). kcnn's metadata record is the IR's
`rt_info` entry "kcnn". The batch norms arrive folded into the convolutions.
"""

import numpy as np

from kcnn.exporting import metadata as metadata_lib

KEY = "kcnn"
# OpenVINO's CPU plugin defaults to bfloat16 where the CPU has it (see above).
FLOAT32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _openvino():
    try:
        import openvino
    except ImportError as e:
        raise ImportError("the OpenVINO export and runtime need the openvino package: "
                          "pip install 'kcnn[openvino]'") from e
    return openvino


def write(model, out, *, verbose=False):
    import keras

    ov = _openvino()
    if len(model.inputs) != 1:
        raise ValueError(f"the OpenVINO export takes models with one input; "
                         f"{model.name!r} has {len(model.inputs)}.")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        ov_model = _from_tensorflow(ov, model)
    elif backend == "torch":
        from kcnn.exporting.pt2 import exported_program

        ov_model = ov.convert_model(exported_program(model))
    else:
        raise ValueError(f"the OpenVINO export runs on the TensorFlow and torch backends "
                         f"(kcnn.export routes other backends through a TensorFlow "
                         f"process); this is {backend!r}.")
    # A dynamic batch, the rest of the input shape as the model's.
    shape = [-1] + [int(d) for d in model.inputs[0].shape[1:]]
    ov_model.reshape({0: ov.PartialShape(shape)})
    ov_model.set_rt_info(metadata_lib.dumps(model, "openvino"), [KEY])
    ov.save_model(ov_model, out, compress_to_fp16=False)
    if verbose:
        print(f"Saved OpenVINO IR at {out!r}.")


def _from_tensorflow(ov, model):
    """The IR of the model's inference `tf.function`, with its outputs only."""
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32,
                         name="inputs")
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    ov_model = ov.convert_model(function)
    names = {t.name for t in function.outputs}
    results = [r for r in ov_model.get_results()
               if names & set(r.input_value(0).get_names())]
    if len(results) != len(function.outputs):
        raise RuntimeError(f"OpenVINO's conversion of {model.name!r} lost track of its "
                           f"outputs {sorted(names)}.")
    if len(results) == len(ov_model.outputs):
        return ov_model
    return ov.Model(results, ov_model.get_parameters(), model.name)


def open(path):
    """A function of a preprocessed float32 batch to the model's output, in
    OpenVINO's CPU runtime (float32 inference)."""
    ov = _openvino()
    compiled = ov.Core().compile_model(path, "CPU", FLOAT32)
    return lambda x: compiled(np.asarray(x, np.float32))[0]


def read_metadata(path):
    """kcnn's record from the IR's `rt_info`, or None if it has none."""
    ov = _openvino()
    ov_model = ov.Core().read_model(path)
    if not ov_model.has_rt_info([KEY]):
        return None
    return metadata_lib.loads(ov_model.get_rt_info([KEY]).astype(str), source=path)
