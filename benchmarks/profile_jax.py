"""Where a JAX training and inference step of a kcnn model spends its time.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/profile_jax.py [--model resnet50]
        [--batch-size 16] [--image-size 224] [--rounds 3]
        [--xla-flags "--xla_cpu_use_xnnpack=false"] [--layout channels_first]
        [--variant NAME] [--parts all | kcnn_train,torch_train,...] [--no-trace]
        [--hlo-dir DIR] [--pointwise-as-matmul | --pointwise-ab] [--layout-ab]

One process, one Keras backend (JAX), one set of XLA flags (XLA reads
`XLA_FLAGS` once, at `import jax`: --xla-flags are added to it before
anything imports jax, so each flag setting is its own run of this script).
With torchvision's eager model timed in the same process as the yardstick,
runs with different flags compare through their ratios to torchvision.

Contenders, timed in interleaved rounds (`_bench.interleaved`), after one
untimed call each (which compiles):

- `kcnn_train`: `model.train_on_batch` (SGD 0.01, momentum 0.9, sparse
  cross-entropy on logits), Keras's JAX trainer as users run it;
- `jit_train`: the same step written by hand: `jax.jit` of
  `value_and_grad(model.stateless_call)` + `optimizer.stateless_apply`, with
  its state (weights, batch-norm statistics, optimizer slots) donated and
  kept on the device, the input on the device; kcnn_train / jit_train is
  the cost of Keras's trainer around the compiled step;
- `jit_fwd_bwd`: the loss and its gradients only (training-mode forward and
  backward, no optimizer);
- `jit_fwd_train`: the training-mode forward and loss only;
- `jit_update`: the optimizer update only (donated);
- `kcnn_infer`: `model.predict_on_batch`; `jit_infer`: `jax.jit` of
  `stateless_call(training=False)` on a device input;
- `torch_train`, `torch_infer`: torchvision's model in eager PyTorch, as in
  benchmarks/throughput.py.

Then (unless --no-trace) one step of `jit_train` and of `jit_infer` runs
under `jax.profiler` with XLA's per-thunk trace events on
(`--xla_cpu_enable_xprof_traceme=true`), and the events are matched to the
optimized HLO of the same executables (`jit(...).lower(...).compile()
.as_text()`): seconds by kind of operation (convolution, matrix multiply,
reduction, transpose/copy, element-wise, ...) summed over XLA's threads, and
the number of each kind in the HLO. `--hlo-dir` also writes the optimized
HLO text there.

A/B in one process: `--pointwise-ab` builds a second model whose 1x1
convolutions are a strided slice and a matmul (what kcnn's Conv2D does on
JAX; the first model runs Keras's convolution; `--pointwise-as-matmul` makes
the only model so) and adds `kcnn_train_pw` / `kcnn_infer_pw`; `--layout-ab` a
second model built channels_first (`kcnn_train_cf` / `kcnn_infer_cf`).
Findings and numbers: the README of benchmarks/ and results/profile_jax.json.

Writes (merges) the run under its --variant name into
`results/profile_jax.json`.
"""

import argparse
import os
import sys


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--xla-flags", default="", help="added to XLA_FLAGS before import jax")
    parser.add_argument("--layout", choices=("channels_last", "channels_first"),
                        default="channels_last")
    parser.add_argument("--variant", default=None,
                        help="the run's name in the JSON (default: from flags and layout)")
    parser.add_argument("--parts", default="all",
                        help="comma-separated contenders to time (default all)")
    parser.add_argument("--no-trace", action="store_true")
    parser.add_argument("--pointwise-as-matmul", action="store_true",
                        help="compute 1x1 convolutions as a matrix multiply over the channel "
                             "axis (the change proposed for kcnn's Conv2D on JAX)")
    parser.add_argument("--layout-ab", action="store_true",
                        help="time a second model built channels_first in the same process "
                             "(on the transposed input): contenders kcnn_train_cf, kcnn_infer_cf")
    parser.add_argument("--pointwise-ab", action="store_true",
                        help="time a second model with --pointwise-as-matmul in the same "
                             "process: contenders kcnn_train_pw and kcnn_infer_pw")
    parser.add_argument("--hlo-dir", default=None)
    parser.add_argument("--out", default=None, help="JSON file (default results/profile_jax.json)")
    parser.add_argument("--no-save", action="store_true")
    return parser.parse_args()


ARGS = _arguments() if __name__ == "__main__" else None
if ARGS is not None:
    # Both must be in place before keras and jax are imported.
    os.environ["KERAS_BACKEND"] = "jax"
    flags = ARGS.xla_flags + ("" if ARGS.no_trace else " --xla_cpu_enable_xprof_traceme=true")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()

import kcnn  # noqa: E402,I001  (before torch: it orders triton, keras, TF)
import collections  # noqa: E402
import functools  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import _bench  # noqa: E402

TRAIN = ("kcnn_train", "jit_train", "jit_fwd_bwd", "jit_fwd_train", "jit_update", "torch_train")
INFER = ("kcnn_infer", "jit_infer", "torch_infer")


# -- The contenders ------------------------------------------------------------

def jax_contenders(model, x, y):
    """{name: zero-argument step} of the Keras trainer and the hand-written jitted parts,
    and {name: (jitted function, example arguments)} for the trace."""
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)  # builds the optimizer's slots
    xd, yd = jax.device_put(x), jax.device_put(y)

    def own(variables):  # each donating contender owns its buffers
        return [jax.numpy.array(v.value, copy=True) for v in variables]

    def loss_fn(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        return jax.numpy.mean(loss), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def train_step(trainable, non_trainable, slots, x, y):
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, slots = optimizer.stateless_apply(slots, grads, trainable)
        return loss, trainable, non_trainable, slots

    fwd_bwd = jax.jit(grad_fn)
    fwd_train = jax.jit(loss_fn)

    @functools.partial(jax.jit, donate_argnums=(0, 2))
    def update(slots, grads, trainable):
        trainable, slots = optimizer.stateless_apply(slots, grads, trainable)
        return trainable, slots

    @jax.jit
    def infer(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    state = {"train": [own(model.trainable_variables), own(model.non_trainable_variables),
                       own(optimizer.variables)],
             "update": [own(optimizer.variables), own(model.trainable_variables)]}
    fixed = (own(model.trainable_variables), own(model.non_trainable_variables))
    grads = jax.tree.map(jax.numpy.ones_like, fixed[0])

    def jit_train():
        loss, *state["train"] = train_step(*state["train"], xd, yd)
        return loss.block_until_ready()

    def jit_update():
        slots, trainable = state["update"]
        trainable, slots = update(slots, grads, trainable)
        state["update"] = [slots, trainable]
        return jax.block_until_ready(trainable)

    steps = {
        "kcnn_train": lambda: model.train_on_batch(x, y),
        "jit_train": jit_train,
        "jit_fwd_bwd": lambda: jax.block_until_ready(fwd_bwd(*fixed, xd, yd)),
        "jit_fwd_train": lambda: jax.block_until_ready(fwd_train(*fixed, xd, yd)),
        "jit_update": jit_update,
        "kcnn_infer": lambda: model.predict_on_batch(x),
        "jit_infer": lambda: infer(*fixed, xd).block_until_ready(),
    }
    traced = {"jit_train": (train_step, lambda: (*state["train"], xd, yd), jit_train),
              "jit_infer": (infer, lambda: (*fixed, xd), steps["jit_infer"])}
    return steps, traced


def torch_contenders(name, x_nchw, y):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from throughput import torch_steps

    train, infer, _ = torch_steps(name, x_nchw, y)
    return {"torch_train": train, "torch_infer": infer}


def pointwise_as_matmul(on=True):
    """Turn kcnn's 1x1 convolutions as a strided slice and a matmul on or off.

    kcnn's `Conv2D` runs them so on JAX (`kcnn.layers.conv.
    _POINTWISE_MATMUL_BACKENDS`); this script starts with it off (Keras's
    convolution, the baseline it measured), and `--pointwise-as-matmul` /
    `--pointwise-ab` turn it back on. The same numbers (a 1x1 convolution is a
    matrix multiply over channels at each pixel), but XLA:CPU computes its
    weight gradient as one GEMM over batch x height x width instead of a
    convolution over transposed activations. The switch is read when a step is
    traced, so each model's steps must be compiled before it is flipped.
    """
    from kcnn.layers import conv

    conv._POINTWISE_MATMUL_BACKENDS = ("jax",) if on else ()


# -- What the compiled HLO holds -----------------------------------------------

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s+([\w\-]+)\((.*)$")
_COMPUTATION = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")


def parse_hlo(text):
    """{computation: [(name, opcode, shape, rest of line)]} of an HLO module's text."""
    computations, current = {}, None
    for line in text.splitlines():
        if line.strip() == "}":
            current = None
            continue
        match = _INSTRUCTION.match(line)
        if match and current is not None:
            computations[current].append(match.groups())
            continue
        head = _COMPUTATION.match(line)
        if head and "=" not in line.split("{")[0].split("(")[0]:
            current = head.group(1)
            computations[current] = []
    return computations


def _called(rest):
    return re.findall(r"(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-]+)",
                      rest)


def kind_of(name, computations, index):
    """The kind of operation an instruction (a thunk) is, from what it computes."""
    opcode, rest = index[name]
    if opcode == "custom-call":
        target = re.search(r'custom_call_target="([^"]+)"', rest)
        return f"custom-call {target.group(1) if target else '?'}"
    if opcode in ("convolution", "dot", "copy", "transpose", "reduce", "reduce-window",
                  "select-and-scatter", "while", "call", "conditional"):
        return opcode
    if opcode != "fusion":
        return opcode
    inner = collections.Counter()
    todo = _called(rest)
    while todo:
        comp = todo.pop()
        for _, _, op, r in computations.get(comp, []):
            inner[op] += 1
            todo.extend(c for c in _called(r) if op == "fusion")
    fusion_kind = re.search(r"kind=(\w+)", rest)
    if "transpose" in inner and not (inner["convolution"] or inner["dot"]):
        return "fusion: transpose (+ fused element-wise recomputation)"
    prefix = "fusion" if not name.startswith(("ynn", "xnn", "onednn")) \
        else name.split("_")[0] + "-fusion"
    for op in ("convolution", "dot"):
        if inner[op]:
            return f"{prefix}: {op}"
    for op in ("reduce-window", "select-and-scatter", "reduce"):
        if inner[op]:
            return f"{prefix}: {op}"
    if inner and set(inner) <= {"transpose", "copy", "parameter", "bitcast", "reshape",
                                "slice", "pad", "concatenate", "broadcast", "constant"}:
        return f"{prefix}: data movement (transpose/copy/pad/slice)"
    return f"{prefix}: element-wise" + (f" ({fusion_kind.group(1)})" if fusion_kind else "")


def hlo_summary(text):
    """Counts in the optimized HLO: each thunk's kind, convolutions and their layouts."""
    computations = parse_hlo(text)
    index = {}
    for instructions in computations.values():
        for name, _, opcode, rest in instructions:
            index[name] = (opcode, rest)
    entry = next((c for c in computations if "main" in c or "ENTRY" in c), None)
    entry_lines = [line for line in text.splitlines() if line.startswith("ENTRY")]
    if entry_lines:
        entry = _COMPUTATION.match(entry_lines[0]).group(1)
    kinds = collections.Counter(kind_of(n, computations, index) for n, *_ in
                                computations.get(entry, []) if index[n][0] not in
                                ("parameter", "get-tuple-element", "tuple", "constant",
                                 "bitcast"))
    convs = collections.Counter()
    for instructions in computations.values():
        for _, _, opcode, rest in instructions:
            if opcode == "convolution":
                labels = re.search(r"dim_labels=([\w>\-]+)", rest)
                convs[labels.group(1) if labels else "?"] += 1
    return {"entry_thunks_by_kind": dict(kinds.most_common()),
            "convolution_dim_labels": dict(convs.most_common()),
            "instructions": sum(len(v) for v in computations.values())}, index, computations


# -- The trace -----------------------------------------------------------------

def trace(function, arguments, step, hlo_dir=None, label=""):
    """Seconds by kind of operation (summed over XLA's threads) in one traced step."""
    from jax.profiler import ProfileData

    text = function.lower(*arguments()).compile().as_text()
    if hlo_dir:
        os.makedirs(hlo_dir, exist_ok=True)
        with open(os.path.join(hlo_dir, f"{label}.after_optimizations.txt"), "w") as f:
            f.write(text)
    summary, index, computations = hlo_summary(text)
    step()
    directory = tempfile.mkdtemp(prefix="kcnn_jax_trace_")
    jax.profiler.start_trace(directory)
    start = time.perf_counter()
    step()
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()
    path = sorted(glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True))[-1]
    by_kind, by_name, threads = collections.Counter(), collections.Counter(), set()
    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for event in line.events:
                name = event.name
                if name not in index:
                    continue  # ThunkExecutor::Execute and other wrappers
                threads.add(line.name)
                seconds = event.duration_ns / 1e9
                by_kind[kind_of(name, computations, index)] += seconds
                by_name[name] += seconds
    total = sum(by_kind.values())
    return {
        "wall_seconds": _bench.significant(wall),
        "thunk_seconds_all_threads": _bench.significant(total),
        "xla_threads_seen": len(threads),
        "by_kind": {k: {"seconds": _bench.significant(v), "share": round(v / total, 3)}
                    for k, v in by_kind.most_common()},
        "top_thunks": [{"name": n, "kind": kind_of(n, computations, index),
                        "shape": _shape(n, computations),
                        "seconds": _bench.significant(v)}
                       for n, v in by_name.most_common(25)],
        "hlo": summary,
    }


def _shape(name, computations):
    """The instruction's shape and the JAX operation it came from (its op_name)."""
    for instructions in computations.values():
        for n, shape, _, rest in instructions:
            if n == name:
                op = re.search(r'op_name="([^"]+)"', rest)
                return shape[:100] + (f"  <- {op.group(1)[:100]}" if op else "")
    return None


# -- The run -------------------------------------------------------------------

def main(args):
    keras.config.set_image_data_format(args.layout)
    size, batch = args.image_size, args.batch_size
    shape = (3, size, size) if args.layout == "channels_first" else (size, size, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 1000, size=batch).astype("int32")
    pointwise_as_matmul(args.pointwise_as_matmul)
    model = kcnn.create_model(args.model, input_shape=shape, classifier_activation=None)
    steps, traced = jax_contenders(model, x, y)
    if args.pointwise_ab:
        # Keras compiled the first model's train step above; its predict step now,
        # before the patch, so that only the second model is built with matmuls.
        steps["kcnn_infer"]()
        pointwise_as_matmul()
        other = kcnn.create_model(args.model, input_shape=shape, classifier_activation=None)
        other_steps, _ = jax_contenders(other, x, y)
        steps["kcnn_train_pw"] = other_steps["kcnn_train"]
        steps["kcnn_infer_pw"] = other_steps["kcnn_infer"]
    if args.layout_ab and args.layout == "channels_last":
        keras.config.set_image_data_format("channels_first")
        x_cf = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        other = kcnn.create_model(args.model, input_shape=x_cf.shape[1:],
                                  classifier_activation=None)
        other_steps, _ = jax_contenders(other, x_cf, y)
        keras.config.set_image_data_format("channels_last")
        steps["kcnn_train_cf"] = other_steps["kcnn_train"]
        steps["kcnn_infer_cf"] = other_steps["kcnn_infer"]
    wanted = TRAIN + INFER if args.parts == "all" else tuple(args.parts.split(","))
    if any(p.startswith("torch") for p in wanted):
        x_nchw = x if args.layout == "channels_first" else \
            np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        steps.update(torch_contenders(args.model, x_nchw, y.astype("int64")))
    runs = {name: steps[name] for name in wanted}
    first = {}
    for name, run in runs.items():
        start = time.perf_counter()
        run()
        first[name] = _bench.significant(time.perf_counter() - start)
        print(f"{name}: first call {first[name]} s", flush=True)
    times = _bench.interleaved(runs, args.rounds)
    record = {
        "model": args.model, "batch_size": batch, "image_size": size, "layout": args.layout,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "rounds": args.rounds,
        "pointwise_as_matmul": args.pointwise_as_matmul,
        "first_call_seconds": first,
        "seconds": {name: _bench.spread(ts) for name, ts in times.items()},
    }
    ratios = {}
    for a, b in (("torch_train", "kcnn_train"), ("torch_infer", "kcnn_infer"),
                 ("torch_train", "jit_train"), ("torch_infer", "jit_infer"),
                 ("kcnn_train", "jit_train"), ("kcnn_infer", "jit_infer"),
                 ("jit_fwd_bwd", "jit_train"), ("jit_fwd_train", "jit_fwd_bwd"),
                 ("jit_update", "jit_train"), ("kcnn_train", "kcnn_train_pw"),
                 ("kcnn_infer", "kcnn_infer_pw"), ("torch_train", "kcnn_train_pw"),
                 ("torch_infer", "kcnn_infer_pw"), ("kcnn_train", "kcnn_train_cf"),
                 ("kcnn_infer", "kcnn_infer_cf")):
        if a in times and b in times:
            ratios[f"{a} / {b}"] = _bench.ratio(times[a], times[b])
    record["ratios"] = ratios
    record["ratios_note"] = ("seconds a / seconds b: torch_* / kcnn_* is kcnn's speed "
                             "relative to torchvision (above 1: kcnn faster)")
    for name, spread in record["seconds"].items():
        print(f"{name:14s} median {spread['median']:.4g} s  rounds {spread['rounds']}")
    for key, value in ratios.items():
        print(f"{key:28s} {value['of_medians']}")
    if not args.no_trace:
        record["trace"] = {}
        for name, (function, arguments, step) in traced.items():
            record["trace"][name] = trace(function, arguments, step, args.hlo_dir, name)
            t = record["trace"][name]
            print(f"\n{name}: wall {t['wall_seconds']} s, thunks {t['thunk_seconds_all_threads']}"
                  f" thread-s on {t['xla_threads_seen']} threads")
            for kind, v in t["by_kind"].items():
                print(f"  {kind:60s} {v['seconds']:8.4g} s {v['share']:6.1%}")
            print("  HLO:", json.dumps(t["hlo"]))
    variant = args.variant or (f"{args.layout} {args.xla_flags}".strip())
    record["machine"] = _bench.machine()
    if not args.no_save:
        out = args.out or os.path.join(_bench.RESULTS, "profile_jax.json")
        data = {}
        if os.path.exists(out):
            with open(out) as f:
                data = json.load(f)
        data.setdefault("benchmark", "profile_jax")
        data.setdefault("variants", {})[variant] = record
        with open(out, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        print(f"wrote {out} [{variant}]")
    return record


if __name__ == "__main__":
    main(ARGS)
