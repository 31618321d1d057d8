"""Every notebook runs top to bottom (small-data switch on), and the committed
outputs come from a full run of the current source."""

import importlib.util
import os

import nbformat
import pytest

pytestmark = pytest.mark.tf_only

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
spec = importlib.util.spec_from_file_location("notebooks_make", os.path.join(HERE, "make.py"))
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)

NAMES = make.sources()


def test_there_are_notebooks():
    assert len(NAMES) >= 1


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


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_small_data(name, monkeypatch):
    monkeypatch.setenv("KCNN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = make.execute(make.build(name), timeout=600)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "small run" in "".join(o.get("text", "") for o in outputs)
