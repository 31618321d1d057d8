"""ONNX: the model's float input, converted by Keras (tf2onnx) in TensorFlow.

kcnn's metadata record is the model's `metadata_props` entry "kcnn". The file
is checked to load in onnxruntime when it is installed.
"""

import numpy as np

from kcnn.exporting import metadata as metadata_lib

KEY = "kcnn"


def write(model, out, *, verbose=False):
    import onnx

    # Keras's ONNX export needs the model called once (its input signature).
    shape = [1 if d is None else d for d in model.inputs[0].shape]
    model(np.zeros(shape, "float32"))
    model.export(out, format="onnx", verbose=verbose)
    proto = onnx.load(out)
    entry = proto.metadata_props.add()
    entry.key, entry.value = KEY, metadata_lib.dumps(model, "onnx")
    onnx.save(proto, out)
    _check(out)


def _check(out):
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])


def open(path):
    """A function of a preprocessed float32 batch to the model's output, in onnxruntime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]


def read_metadata(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    return metadata_lib.loads(props[KEY], source=path) if KEY in props else None
