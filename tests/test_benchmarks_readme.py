"""The README's benchmark numbers are benchmarks/render.py's output of
benchmarks/results/*.json, not copies: a new result without a re-render, or a
hand-edited figure, fails here."""

import importlib.util
import json
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
    with pytest.raises(ValueError, match=r"lacks the regions \['b16', 'lrn', 'summary'\]"):
        render.stale(render.RESULTS, str(readme))


def test_the_batch_16_region_exists_before_any_batch_16_result(render, tmp_path):
    regions = render.readme_regions(str(tmp_path))
    assert list(regions) == ["b16"]
    assert regions["b16"].startswith("Not run yet: `benchmarks/run.py --b16`")


def test_the_batch_16_table_has_every_backend_and_a_row_per_model(render, tmp_path):
    # A quick-preset file has the batch-16 file's layout: one backend's result.
    with open(os.path.join(render.RESULTS, "throughput_jax.json")) as f:
        record = f.read()
    (tmp_path / "throughput_b16_jax.json").write_text(record)
    text = render.readme_regions(str(tmp_path))["b16"]
    header, _, *rows = [line for line in text.splitlines() if line.startswith("|")]
    assert header == "| model | " + " | ".join(
        f"{backend} / {peer} train / infer" for peer in render.PEERS
        for backend in render.BACKENDS) + " |"
    models = [row.split(" | ")[0].strip("| ") for row in rows]
    assert models == [m["model"] for m in json.loads(record)["models"]]
    # jax is measured; tensorflow and torch are not, in both peers' columns.
    assert all(row.count("not run") == 4 for row in rows)
    assert "Not run yet on tensorflow, torch." in text


def test_a_result_with_a_tuned_allocator_says_so_where_it_is_shown(render, tmp_path):
    # torch's eager step times depend on glibc's thresholds (run.py --malloc-threshold):
    # a table measured with them set must not read as one measured with the defaults.
    with open(os.path.join(render.RESULTS, "throughput_jax.json")) as f:
        record = json.load(f)
    record["machine"]["allocator"] = {}
    (tmp_path / "throughput_b16_jax.json").write_text(json.dumps(record))
    assert "MALLOC" not in render.readme_regions(str(tmp_path))["b16"]
    record["machine"]["allocator"] = {"MALLOC_MMAP_THRESHOLD_": "4000000000",
                                      "MALLOC_TRIM_THRESHOLD_": "4000000000"}
    (tmp_path / "throughput_b16_jax.json").write_text(json.dumps(record))
    machine = record["machine"]
    assert (f"load average {machine['load_average_at_start'][0]} at start, "
            f"{machine['date'][:10]}, MALLOC_MMAP_THRESHOLD_=4000000000, "
            f"MALLOC_TRIM_THRESHOLD_=4000000000; ") in render.readme_regions(str(tmp_path))["b16"]

