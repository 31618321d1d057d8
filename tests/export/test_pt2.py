"""`.pt2` (torch ExportedProgram): a process with torch and without Keras or kcnn
loads the file with `torch.export.load` and gives the Keras model's outputs.

The torch backend writes the file itself; TensorFlow and JAX write it through
the model's `.keras` file in a torch process. From TensorFlow every graph
family of the issue is exported (LeNet-5, the paper's AlexNet features with LRN
and grouped convolutions, ResNet-18, MobileNetV2, EfficientNet-B0) by `kcnn
export` in ONE torch process: what `kcnn.export`'s route runs for each model,
without a process start per model. From JAX (through `kcnn.export`'s route)
and torch one model each. Every file of the module then runs a batch of 1 and
a batch of 3 (dynamic batch) in ONE fresh process that imports torch and numpy
only.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kcnn
from kcnn.exporting import metadata
from tests.export import graph_models
from tests.export.graph_models import BACKEND, assert_close, predict

MODELS = {
    "tensorflow": ("lenet5", "alexnet_features", "resnet18", "mobilenet_v2",
                   "efficientnet_b0"),
    "jax": ("alexnet_features",),
    "torch": ("resnet18",),
}[BACKEND]

# The fresh process: for each job, load the program, run each batch of the
# job's inputs file, save the outputs; then check that nothing imported Keras.
SERVE = textwrap.dedent("""
    import json
    import sys
    import numpy as np
    import torch

    for job in json.load(open(sys.argv[1])):
        program = torch.export.load(job["path"]).module()
        with torch.no_grad():
            outputs = {key: program(torch.from_numpy(x)).numpy()
                       for key, x in np.load(job["inputs"]).items()}
        np.savez(job["outputs"], **outputs)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "kcnn"))
    assert not loaded, f"loading the programs imported {loaded[:5]}"
""")

# `kcnn export MODEL.keras OUT.pt2 --format pt2` for each pair, in one process.
EXPORT = textwrap.dedent("""
    import sys
    from kcnn.cli import main

    pairs = sys.argv[1:]
    for model, out in zip(pairs[::2], pairs[1::2]):
        assert main(["export", model, out, "--format", "pt2"]) == 0
""")


def run(script, *args, backend=None):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if backend:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"the child process failed:\n{done.stderr[-3000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """name -> (model, path, outputs of the fresh torch process), or the error
    that the test of that model raises."""
    work = tmp_path_factory.mktemp("pt2")
    results, written = {}, []
    if BACKEND == "tensorflow":
        # Five models: one torch process for all (each start costs seconds).
        pairs = []
        for name in MODELS:
            graph_models.model(name).save(work / f"{name}.keras")
            pairs += [work / f"{name}.keras", work / f"{name}.pt2"]
        try:
            run(EXPORT, *pairs, backend="torch")
            written = [(name, graph_models.model(name), work / f"{name}.pt2")
                       for name in MODELS]
        except AssertionError as e:
            results.update(dict.fromkeys(MODELS, e))
    else:
        (name,) = MODELS
        model = graph_models.model(name)
        try:
            written = [(name, model, kcnn.export(model, work / f"{name}.pt2", format="pt2"))]
        except Exception as e:  # noqa: BLE001  (raised again by the test of this model)
            results[name] = e
    jobs = []
    for name, model, path in written:
        np.savez(work / f"{name}_in.npz", **graph_models.inputs(model))
        jobs.append({"name": name, "path": str(path), "inputs": str(work / f"{name}_in.npz"),
                     "outputs": str(work / f"{name}_out.npz")})
    (work / "jobs.json").write_text(json.dumps(jobs))
    try:
        run(SERVE, work / "jobs.json")
    except AssertionError as e:
        results.update({job["name"]: e for job in jobs})
        return results
    for (name, model, path), job in zip(written, jobs):
        results[name] = model, path, dict(np.load(job["outputs"]))
    return results


def result(served, name):
    value = served[name]
    if isinstance(value, Exception):
        raise value
    return value


@pytest.mark.parametrize("name", MODELS)
def test_pt2_in_a_process_without_keras_equals_keras_at_batch_1_and_3(served, name):
    model, _, outputs = result(served, name)
    for key, x in graph_models.inputs(model).items():
        assert_close(outputs[key], predict(model, x))


def test_metadata_round_trips_and_open_runs_the_program(served):
    from kcnn.exporting import pt2

    name = MODELS[0]
    model, path, _ = result(served, name)
    assert pt2.read_metadata(path) == metadata.record(model, "pt2")
    x = graph_models.inputs(model)["batch3"]
    assert_close(pt2.open(path)(x), predict(model, x))
