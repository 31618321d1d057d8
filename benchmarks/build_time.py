"""Seconds from a fresh process to a built ResNet-50: kcnn against keras.applications.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/build_time.py [--rounds 3] [--out DIR]

What a user waits for before the first step, on the current Keras backend: a
fresh Python process imports the package (`import kcnn`, which imports keras;
or `import keras`), builds `kcnn.resnet50(weights=None)` or
`keras.applications.ResNet50(weights=None)` (random initialisation included),
then calls `predict_on_batch` on one 224x224 image (JAX compiles here, so the
first call is reported on its own). Each round starts one fresh process per
contender, kcnn first in even rounds and keras.applications first in odd ones,
one at a time; the numbers are the medians over --rounds rounds (3 by default),
with their spread. Python's own start-up is the same for both and is not counted.
Writes `build_time_<backend>.json` in --out.
"""

import argparse
import json
import os
import subprocess
import sys
import time

CONTENDERS = ("kcnn", "keras.applications")
BUILDERS = {"kcnn": "kcnn.resnet50(weights=None)",
            "keras.applications": "keras.applications.ResNet50(weights=None)"}
INPUT_SHAPE = (224, 224, 3)
CHILD_TIMEOUT = 600

# The child: one contender, timed phase by phase, one JSON line on stdout.
CHILD = """
import time
start = time.perf_counter()
if {kcnn!r}:
    import kcnn
    import keras
else:
    import keras
imported = time.perf_counter()
if {kcnn!r}:
    model = kcnn.resnet50(weights=None)
else:
    model = keras.applications.ResNet50(weights=None)
built = time.perf_counter()
import numpy as np
x = np.zeros((1,) + {shape!r}, dtype="float32")
keras.ops.convert_to_numpy(model.predict_on_batch(x))
called = time.perf_counter()
import json
print("RESULT " + json.dumps({{"import": imported - start, "build": built - imported,
                              "first_call": called - built,
                              "backend": keras.backend.backend()}}))
"""


def run_child(contender):
    """Seconds of each phase in one fresh process."""
    code = CHILD.format(kcnn=contender == "kcnn", shape=INPUT_SHAPE)
    done = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True,
                          timeout=CHILD_TIMEOUT,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"the {contender} child failed (exit {done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per contender (default 3)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "results"), help="folder for the JSON file")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args()
    if args.rounds < 1:
        raise ValueError(f"--rounds must be a positive integer; received {args.rounds!r}.")

    # The children first, while this process has imported nothing heavy.
    start = time.perf_counter()
    runs = {contender: [] for contender in CONTENDERS}
    for round_ in range(args.rounds):
        order = CONTENDERS if round_ % 2 == 0 else CONTENDERS[::-1]
        for contender in order:
            runs[contender].append(run_child(contender))
            r = runs[contender][-1]
            print(f"round {round_ + 1} {contender:20s} import {r['import']:6.2f} s  "
                  f"build {r['build']:6.2f} s  first call {r['first_call']:6.2f} s",
                  flush=True)

    import kcnn  # noqa: F401,I001  (before TensorFlow: it orders triton, keras, TF)
    import _bench

    phases = ("import", "build", "first_call")
    seconds = {c: {p: _bench.spread([r[p] for r in runs[c]]) for p in phases}
               for c in CONTENDERS}
    for c in CONTENDERS:
        seconds[c]["import_and_build"] = _bench.spread(
            [r["import"] + r["build"] for r in runs[c]])
    ratios = {p: _bench.significant(seconds["kcnn"][p]["median"]
                                    / seconds["keras.applications"][p]["median"])
              for p in ("import_and_build", "first_call")}
    for c in CONTENDERS:
        s = seconds[c]
        print(f"{c:20s} import + build {s['import_and_build']['median']:6.2f} s, "
              f"first call {s['first_call']['median']:6.2f} s (medians)")
    print(f"kcnn / keras.applications: import + build {ratios['import_and_build']:.2f}, "
          f"first call {ratios['first_call']:.2f}")
    record = {"benchmark": "build_time", "processes": args.rounds, "builders": BUILDERS,
              "batch_size": 1, "input_shape": list(INPUT_SHAPE),
              "ratio_convention": "kcnn seconds / keras.applications seconds "
                                  "(below 1: kcnn is faster)",
              "seconds": seconds, "ratios": ratios,
              "wall_seconds": round(time.perf_counter() - start, 1)}
    _bench.save(record, args.out, f"build_time_{runs['kcnn'][0]['backend']}", args.no_save)


if __name__ == "__main__":
    main()
