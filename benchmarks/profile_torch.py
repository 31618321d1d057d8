"""Where a torch-backend step of a kcnn model spends its time, against torchvision's.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/profile_torch.py [--model alexnet]
        [--mode train] [--batch-size 16] [--image-size 224] [--rounds 5] [--steps 2]

One process, the torch backend. The contenders are the steps of
benchmarks/throughput.py: kcnn's `train_on_batch` (SGD 0.01, momentum 0.9,
sparse cross-entropy on logits) or `predict_on_batch`, and torchvision's model
in eager PyTorch with the same optimizer and loss. First their wall time per
step in interleaved rounds (`_bench.interleaved`), then --steps steps of each
under `torch.profiler`: the self CPU time of every torch operator, summed, and
the wall time of those profiled steps. What the wall time holds beyond the
operators is Python (Keras's trainer and layers, torchvision's modules) and
waiting. Writes (merges, under "<model>_<mode>") `results/profile_torch.json`.
"""

import kcnn  # noqa: I001  (before TensorFlow and torch: it orders triton, keras, TF)
import argparse
import json
import os
import time

import keras
import numpy as np

import _bench
from throughput import MODELS, keras_steps, torch_steps


def profiled(step, steps):
    """(seconds of `steps` calls, {operator: self CPU seconds}) under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
    ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    return wall, ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="alexnet", choices=MODELS)
    parser.add_argument("--mode", default="train", choices=["train", "infer"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps per contender")
    parser.add_argument("--top", type=int, default=12, help="operators kept per contender")
    parser.add_argument("--out", default=_bench.RESULTS)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if keras.backend.backend() != "torch":
        raise SystemExit("profile_torch.py profiles the torch backend: run it with "
                         "KERAS_BACKEND=torch.")
    threads = _bench.pin_threads()
    rng = np.random.default_rng(0)
    shape = (args.image_size, args.image_size, 3)
    x = rng.standard_normal((args.batch_size,) + shape, dtype=np.float32)
    y = rng.integers(0, 1000, size=args.batch_size).astype("int64")
    model = kcnn.create_model(args.model, input_shape=shape, classifier_activation=None)
    index = 0 if args.mode == "train" else 1
    steps = {"kcnn": keras_steps(model, x, y)[index],
             "torchvision": torch_steps(args.model, np.ascontiguousarray(
                 x.transpose(0, 3, 1, 2)), y)[index]}
    for step in steps.values():
        for _ in range(2):
            step()
    times = _bench.interleaved(steps, args.rounds)
    record = {"model": args.model, "mode": args.mode, "batch_size": args.batch_size,
              "image_size": args.image_size, "threads": threads, "rounds": args.rounds,
              "profiled_steps": args.steps, "contenders": {}}
    for name, step in steps.items():
        wall, ops = profiled(step, args.steps)
        total = sum(ops.values())
        top = dict(sorted(ops.items(), key=lambda kv: -kv[1])[:args.top])
        record["contenders"][name] = {
            "seconds_per_step": _bench.spread(times[name]),
            "profiled_wall_seconds_per_step": round(wall / args.steps, 4),
            "operators_seconds_per_step": round(total / args.steps, 4),
            "outside_operators_share": round(1 - total / wall, 3),
            "top_operators_seconds_per_step": {k: round(v / args.steps, 4)
                                               for k, v in top.items()}}
        print(f"{name:12s} step {_bench.spread(times[name])['median']:.3f} s; profiled "
              f"{wall / args.steps:.3f} s, operators {total / args.steps:.3f} s "
              f"({100 * (1 - total / wall):.0f}% outside)", flush=True)
    kcnn_time = record["contenders"]["kcnn"]["seconds_per_step"]["median"]
    record["time_kcnn_over_torchvision"] = round(
        kcnn_time / record["contenders"]["torchvision"]["seconds_per_step"]["median"], 3)
    if args.no_save:
        return
    path = os.path.join(args.out, "profile_torch.json")
    merged = {}
    if os.path.exists(path):
        with open(path) as f:
            merged = json.load(f)
    record["machine"] = _bench.machine()
    merged.setdefault("benchmark", "profile_torch")
    merged.setdefault("runs", {})[f"{args.model}_{args.mode}"] = record
    os.makedirs(args.out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(merged, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
