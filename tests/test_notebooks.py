"""Every notebook runs top to bottom on every backend (small-data switch on), and
the committed outputs come from a full run of the current source."""

import importlib.util
import os

import keras
import nbformat
import pytest

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
spec = importlib.util.spec_from_file_location("notebooks_make", os.path.join(HERE, "make.py"))
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)

NAMES = make.sources()
MULTI_DEVICE = [n for n in NAMES if n.startswith("06")][0]
BACKEND = keras.backend.backend()

# What notebook 6 says about its devices on each backend: two replicas where Keras
# has data parallelism (TensorFlow's MirroredStrategy, JAX's DataParallel), and why
# there is one device on torch.
DEVICES_SAID = {
    "tensorflow": "replicas in sync: 2",
    "jax": "replicated on 2 devices",
    "torch": "the torch backend has no multi-device training in Keras 3.15",
}


def test_there_are_notebooks():
    assert len(NAMES) >= 1


@pytest.mark.skipif(BACKEND != "torch", reason="reads files, the same on every backend: "
                    "checked once, on torch")
@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_a_full_run_of_its_source(name):
    path = os.path.join(HERE, name + ".ipynb")
    assert os.path.isfile(path), f"{name}.ipynb is missing: run python notebooks/make.py {name}"
    committed = nbformat.read(path, as_version=4)
    expected = make.build(name)
    assert [c.source for c in committed.cells] == [c.source for c in expected.cells], (
        f"{name}.ipynb is stale: run python notebooks/make.py {name}")
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.outputs or c.execution_count for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    first = "".join(o.get("text", "") for o in code[0].outputs)
    assert "backend: tensorflow, full run" in first, (
        f"{name}.ipynb must be a full run on TensorFlow, as notebooks/README.md says: "
        f"KERAS_BACKEND=tensorflow python notebooks/make.py {name}")


def _run_small(name, monkeypatch):
    """The notebook's small version on this backend; all its printed text."""
    monkeypatch.setenv("KCNN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("KERAS_BACKEND", BACKEND)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = make.execute(make.build(name), timeout=600)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "small run" in text and f"backend: {BACKEND}" in text
    return text


@pytest.mark.parametrize("name", [n for n in NAMES if n != MULTI_DEVICE])
def test_notebook_runs_with_small_data(name, monkeypatch):
    _run_small(name, monkeypatch)


def test_notebook_6_trains_on_two_devices_where_keras_can_then_exports(monkeypatch):
    text = _run_small(MULTI_DEVICE, monkeypatch)
    assert DEVICES_SAID[BACKEND] in text
    assert "the served model gives kcnn.predict's answers" in text
