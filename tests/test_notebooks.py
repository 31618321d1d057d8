"""Every notebook runs top to bottom (small-data switch on), and the committed
outputs come from a full run of the current source."""

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
BACKEND = keras.backend.backend()


def test_there_are_notebooks():
    assert len(NAMES) >= 1


@pytest.mark.tf_only
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
    assert "full run" in first


def _run_small(name, backend, monkeypatch):
    monkeypatch.setenv("KCNN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("KERAS_BACKEND", backend)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = make.execute(make.build(name), timeout=600)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "small run" in text and f"backend: {backend}" in text


@pytest.mark.tf_only
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_small_data(name, monkeypatch):
    _run_small(name, "tensorflow", monkeypatch)


# Notebooks 1-5 run on any backend. The quick ones run on the other two in CI
# (about 10 s each); 2, 4 and 5 take 0.5-2.5 min there and were run by hand.
@pytest.mark.skipif(BACKEND == "tensorflow", reason="the TensorFlow run is above")
@pytest.mark.parametrize("name", [n for n in NAMES if n[:2] in ("01", "03")])
def test_quick_notebooks_run_on_this_backend(name, monkeypatch):
    _run_small(name, BACKEND, monkeypatch)
