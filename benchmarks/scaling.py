"""Training step time against batch size, and peak memory per batch size, for one model.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/scaling.py [--quick | --full]
        [--model resnet50] [--batch-sizes 1 2 4 8 16] [--image-size 128] [--out DIR]

Step time: one kcnn model (`classifier_activation=None`, SGD with momentum 0.9,
sparse cross-entropy from logits) trained with `train_on_batch` at each batch
size in one process, the batch sizes interleaved round by round after a warm-up
(JAX compiles once per batch size there), each running --steps steps a round or
as many as took about --unit-seconds; medians and spreads of the rounds.

Memory: one child process per batch size builds the same model, runs
inference steps and then training steps, and reports its resident set size
(RSS) after the imports and after building and compiling, and the peak RSS
during the inference steps and during the training steps (Linux's high-water
mark VmHWM, reset before each phase through /proc/self/clear_refs; elsewhere
`ru_maxrss`, the peak since the start); on a GPU also the device's peak
allocation. The peaks include the framework and the model: their growth over
"built" is what the batch costs. Writes
`scaling_<backend>.json` in --out.
"""

import os

os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import kcnn  # noqa: E402,I001  (first: it orders triton, keras and TensorFlow)
import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import _bench  # noqa: E402

PRESETS = {
    "quick": dict(model="resnet50", image_size=128, batch_sizes=[1, 4, 16],
                  memory_batch_sizes=[1, 16], rounds=3, steps=None, unit_seconds=0.5,
                  warmup=1),
    "full": dict(model="resnet50", image_size=224, batch_sizes=[1, 4, 16, 32, 64, 128, 256],
                 memory_batch_sizes=[1, 16, 64, 256], rounds=5, steps=None, unit_seconds=3.0,
                 warmup=2),
}
MEMORY_STEPS = 2  # inference and training steps in each memory child


def build(name, image_size):
    shape = (3, image_size, image_size) if keras.config.image_data_format() == \
        "channels_first" else (image_size, image_size, 3)
    model = kcnn.create_model(name, input_shape=shape, classifier_activation=None)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, shape


def batch_of(shape, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch_size,) + shape, dtype=np.float32),
            rng.integers(0, 1000, size=batch_size).astype("int64"))


def megabytes_rss():
    """This process's resident set size now, in MB (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def reset_peak_rss():
    """Restart the peak-RSS count from the current size (Linux >= 4.0); False if
    the system cannot, and the peaks then include everything since start."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def megabytes_peak_rss():
    """The peak resident set size since the last reset (or since start), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 2**10, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def memory_child(model_name, image_size, batch_size):
    """Runs in the child: the memory record of one batch size, as one JSON line."""
    record = {"batch_size": batch_size, "rss_after_imports_mb": megabytes_rss()}
    model, shape = build(model_name, image_size)
    x, y = batch_of(shape, batch_size)
    record["rss_after_build_mb"] = megabytes_rss()
    for phase, step in (("inference", lambda: model.predict_on_batch(x)),
                        ("training", lambda: model.train_on_batch(x, y))):
        record["peak_rss_method"] = ("VmHWM, reset per phase" if reset_peak_rss()
                                     else "peak since the start")
        for _ in range(MEMORY_STEPS):
            step()
        record[f"peak_rss_{phase}_mb"] = megabytes_peak_rss()
        device = _bench.device_peak_memory()
        if device is not None:
            record[f"device_peak_after_{phase}_mb"] = round(device / 2**20, 1)
    print(json.dumps(record))


def measure_memory(config, data_format):
    """One child process per batch size; a failure (say, out of memory) is recorded."""
    records = []
    for batch_size in config["memory_batch_sizes"]:
        command = [sys.executable, os.path.abspath(__file__), "--memory-child",
                   "--model", config["model"], "--image-size", str(config["image_size"]),
                   "--memory-batch-sizes", str(batch_size), "--data-format", data_format]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            record = json.loads(lines[-1])
        else:
            record = {"batch_size": batch_size,
                      "error": f"exit {done.returncode}: {done.stderr.strip()[-600:]}"}
        record["seconds"] = round(time.perf_counter() - start, 1)
        print(f"  memory, batch {batch_size}: "
              + (record.get("error") or f"built {record['rss_after_build_mb']} MB, peak "
                 f"{record['peak_rss_inference_mb']} MB in inference, "
                 f"{record['peak_rss_training_mb']} MB in training"))
        records.append(record)
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _bench.add_common_arguments(parser)
    parser.add_argument("--model", help="a kcnn builder name (default: the preset's)")
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        help="batch sizes to time (default: the preset's)")
    parser.add_argument("--memory-batch-sizes", type=int, nargs="+",
                        help="batch sizes to measure memory at, one child process each "
                             "(default: the preset's)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--data-format", choices=["channels_last", "channels_first"],
                        help="Keras image data format (default: keras.config's)")
    parser.add_argument("--unit-seconds", type=float,
                        help="without --steps, each batch size runs as many steps a round "
                             "as take about this long (default: the preset's)")
    parser.add_argument("--no-memory", action="store_true",
                        help="time the steps only, no memory children")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_format:
        keras.config.set_image_data_format(args.data_format)
    if args.memory_child:
        memory_child(args.model, args.image_size, args.memory_batch_sizes[0])
        return
    config = _bench.settings(args, PRESETS)
    kcnn.registry.get_builder(config["model"])  # an unknown name raises, naming the choices
    for key in ("batch_sizes", "memory_batch_sizes"):
        if any(b < 1 for b in config[key]):
            raise ValueError(f"--{key.replace('_', '-')} must be positive integers; "
                             f"received {config[key]!r}.")
    backend = keras.backend.backend()
    print(f"scaling on {backend}, {config}")

    start = time.perf_counter()
    model, shape = build(config["model"], config["image_size"])
    flops, flops_source = _bench.forward_flops(model)
    runs, first_call, steps = {}, {}, {}
    for batch_size in config["batch_sizes"]:
        x, y = batch_of(shape, batch_size)

        def step(x=x, y=y):
            model.train_on_batch(x, y)

        first_call[batch_size], steps[batch_size] = _bench.warm_up(
            step, config["warmup"], config["steps"], config["unit_seconds"])

        def run(step=step, n=steps[batch_size]):
            for _ in range(n):
                step()

        runs[batch_size] = run
    times = _bench.interleaved(runs, config["rounds"])

    rows = []
    print(f"{'batch':>6s} {'step ms':>9s} {'min':>9s} {'max':>9s} {'img/s':>8s} {'GFLOP/s':>8s}")
    for batch_size, ts in times.items():
        n = steps[batch_size]
        step_ms = _bench.spread([1e3 * t / n for t in ts])
        images_per_s = _bench.spread([batch_size * n / t for t in ts])
        gflops = _bench.significant(3 * flops * images_per_s["median"] / 1e9)
        rows.append({"batch_size": batch_size, "step_ms": step_ms,
                     "images_per_s": images_per_s, "train_gflops": gflops,
                     "steps_per_round": n,
                     "first_call_seconds": round(first_call[batch_size], 2)})
        print(f"{batch_size:6d} {step_ms['median']:9.1f} {step_ms['min']:9.1f} "
              f"{step_ms['max']:9.1f} {images_per_s['median']:8.2f} {gflops:8.1f}")
    del model
    keras.backend.clear_session()

    memory = [] if args.no_memory else measure_memory(config,
                                                      keras.config.image_data_format())
    result = {"benchmark": "scaling", "settings": config, "input_shape": list(shape),
              "forward_gflops_per_image": _bench.significant(flops / 1e9),
              "flops_source": flops_source, "steps": rows, "memory": memory,
              "memory_steps": MEMORY_STEPS,
              "seconds": round(time.perf_counter() - start, 1)}
    _bench.save(result, args.out, f"scaling_{backend}", args.no_save)


if __name__ == "__main__":
    main()
