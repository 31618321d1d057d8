"""The benchmarks' harness: interleaved rounds (benchmarks/_bench.py) in which every
contender is timed from the same idle start and none always follows the same
neighbour, and the environment run.py gives its children."""

import importlib.util
import os
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "_bench", os.path.join(ROOT, "benchmarks", "_bench.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.join(ROOT, "benchmarks"))
    return module


@pytest.mark.parametrize("count", [2, 3, 5, 7])
def test_each_round_starts_with_the_next_contender_and_neighbours_change(bench, count):
    names = [f"c{i}" for i in range(count)]
    orders = [bench.round_order(names, r) for r in range(count)]
    for order in orders:
        assert sorted(order) == names
    assert [order[0] for order in orders] == names
    if count > 2:
        # What ran right before each contender over three rounds, the round
        # boundaries included: Python's rotation alone kept it the same in every
        # round but one, so a contender after a spinning thread pool paid each time.
        sequence = [name for order in orders[:3] for name in order]
        before = {name: {a for a, b in zip(sequence, sequence[1:]) if b == name}
                  for name in names}
        assert all(len(b) >= 2 for b in before.values()), before


def test_every_timed_run_starts_after_the_machine_settled(bench):
    ends, starts = [], []

    def run(tag):
        def go():
            starts.append(time.perf_counter())
            ends.append(time.perf_counter())
        return go

    times = bench.interleaved({"a": run("a"), "b": run("b"), "c": run("c")}, 2, settle=0.05)
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2, "c": 2}
    gaps = [s - e for e, s in zip(ends, starts[1:])]
    assert len(gaps) == 5 and min(gaps) >= 0.05
    assert bench.SETTLE_SECONDS >= 0.2  # measured: 0.05 s did not let OpenBLAS's threads stop


def test_run_py_gives_its_children_the_allocator_thresholds_asked_for():
    # What run.py's children run with; the result files record it (_bench.machine).
    spec = importlib.util.spec_from_file_location(
        "run", os.path.join(ROOT, "benchmarks", "run.py"))
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    env = run.child_env("torch", 4_000_000_000)
    assert env["KERAS_BACKEND"] == "torch"
    assert env["MALLOC_MMAP_THRESHOLD_"] == env["MALLOC_TRIM_THRESHOLD_"] == "4000000000"
    plain = run.child_env("jax")
    assert plain["KERAS_BACKEND"] == "jax"
    assert plain.get("MALLOC_MMAP_THRESHOLD_") == os.environ.get("MALLOC_MMAP_THRESHOLD_")
