"""The README's benchmark numbers are benchmarks/render.py's output of
benchmarks/results/*.json, not copies: a new result without a re-render, or a
hand-edited figure, fails here."""

import importlib.util
import os

import keras
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="render.py reads JSON and writes markdown with no backend involved: "
           "checked once, on the TensorFlow backend")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location(
        "render", os.path.join(ROOT, "benchmarks", "render.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_and_results_readme_are_what_render_writes(render):
    assert render.stale(render.RESULTS, render.README) == [], (
        "run .venv/bin/python benchmarks/render.py")


def test_a_hand_edited_figure_makes_the_readme_stale(render, tmp_path):
    with open(render.README) as f:
        text = f.read()
    begin = text.index("<!-- benchmarks:summary:begin")
    edited = text[:begin] + text[begin:].replace("| alexnet |", "| alexnet | 9.99 |", 1)
    readme = tmp_path / "README.md"
    readme.write_text(edited)
    assert render.stale(render.RESULTS, str(readme)) == [str(readme)]


def test_a_readme_without_the_markers_is_refused(render, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# kcnn\n\nNo benchmarks here.\n")
    with pytest.raises(ValueError, match=r"lacks the regions \['lrn', 'summary'\]"):
        render.stale(render.RESULTS, str(readme))
