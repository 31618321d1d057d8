"""OpenVINO IR: the exported file gives the Keras model's outputs in OpenVINO's runtime.

From TensorFlow every graph family of the issue is exported (LeNet-5, the
paper's AlexNet features with LRN and grouped convolutions, ResNet-18,
MobileNetV2, EfficientNet-B0); from JAX (through a TensorFlow process) and
torch one model each: a ResNet-18 with folded batch norms from JAX, and the
AlexNet features from torch, whose LRN Keras's own torch exporter cannot
convert. Each file runs a batch of 1 and a batch of 3 (dynamic batch).
"""

import os
import sys

import pytest

import kcnn
from kcnn.exporting import metadata
from kcnn.exporting import openvino as kcnn_openvino
from tests.export import graph_models
from tests.export.graph_models import BACKEND, assert_close, predict

pytest.importorskip("openvino")

MODELS = {
    "tensorflow": ("lenet5", "alexnet_features", "resnet18", "mobilenet_v2",
                   "efficientnet_b0"),
    "jax": ("resnet18",),
    "torch": ("alexnet_features",),
}[BACKEND]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """name -> (model, path), or the export's error (raised by that model's test)."""
    work = tmp_path_factory.mktemp("openvino")
    results = {}
    for name in MODELS:
        model = graph_models.model(name)
        try:
            results[name] = model, kcnn.export(model, work / f"{name}.xml", format="openvino")
        except Exception as e:  # noqa: BLE001  (raised again by the test of this model)
            results[name] = e
    return results


def exported(exports, name):
    result = exports[name]
    if isinstance(result, Exception):
        raise result
    return result


@pytest.mark.parametrize("name", MODELS)
def test_openvino_runtime_equals_keras_at_batch_1_and_3(exports, name):
    model, path = exported(exports, name)
    assert os.path.isfile(path[:-len(".xml")] + ".bin")
    run = kcnn_openvino.open(path)
    for x in graph_models.inputs(model).values():
        assert_close(run(x), predict(model, x))


def test_ir_has_a_dynamic_batch_one_output_and_kcnn_metadata(exports):
    import openvino as ov

    name = MODELS[0]
    model, path = exported(exports, name)
    ir = ov.Core().read_model(path)
    assert [str(d) for d in ir.inputs[0].get_partial_shape()] == (
        ["?"] + [str(d) for d in graph_models.input_shape(model)])
    assert len(ir.outputs) == 1
    assert kcnn_openvino.read_metadata(path) == metadata.record(model, "openvino")


def test_missing_openvino_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'kcnn\[openvino\]'"):
        kcnn_openvino.open(str(tmp_path / "model.xml"))
