"""CPU serving: inference images/s of each export format's runtime, side by side.

    .venv/bin/python benchmarks/serving.py [--models resnet50 mobilenet_v2 efficientnet_b0]
        [--batches 1 32] [--rounds 3] [--image-size 224] [--out DIR]

For each model (random weights, batch-norm statistics set to random values as
trained ones are; speed does not depend on the values), the parent process
(KERAS_BACKEND=tensorflow) exports it once with `kcnn.export` to a SavedModel,
ONNX, OpenVINO IR, LiteRT float32 and int8 (calibrated on 16 random images:
speed does not depend on calibration) and a `.pt2` (written in a torch
process), then opens each file with `kcnn.load_model` (the runtime a user
serves with: TensorFlow, onnxruntime, OpenVINO's CPU plugin in float32,
LiteRT's interpreter with one thread per CPU, `torch.export.load`) and times
its predictions on one random float32 batch per batch size, in interleaved
rounds (`_bench.interleaved`) after a warm-up, in one process together with
torchvision's eager model (`eval()`, `torch.inference_mode()`) and Keras on
TensorFlow (kcnn's batch-norm-folded model, `predict_on_batch`, as
`kcnn.predict` runs it). Keras on JAX and on torch run in a child process
each (the backend is fixed per process), also against torchvision eager in
that process: compare the `vs_torchvision` ratios across processes, images/s
within one.

Writes results/serving.json: per model, batch and runtime the images/s of each
round, the median, and the median's ratio to torchvision eager in the same
process; and the file sizes.
"""

import kcnn  # noqa: I001  (first: it orders triton, keras and TensorFlow)
import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np

import _bench
from folding import randomize_batch_norms

FORMATS = {"saved_model": "", "onnx": ".onnx", "openvino": ".xml", "litert": ".tflite",
           "litert_int8": ".int8.tflite", "pt2": ".pt2"}


def build(name, size):
    keras.utils.set_random_seed(0)
    return randomize_batch_norms(getattr(kcnn, name)(input_shape=(size, size, 3),
                                                     classes=1000))


def torchvision_infer(name, x):
    """torchvision's eager model in inference, on the same batch laid out NCHW."""
    import torch
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None).eval()
    batch = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def infer():
        with torch.inference_mode():
            return net(batch)

    return infer


def keras_infer(model, x):
    from kcnn.folding import inference_model

    folded = inference_model(model)
    return lambda: folded.predict_on_batch(x)


def time_contenders(contenders, batch, rounds):
    """{name: {"images_per_s": spread}} and each median's ratio to torchvision."""
    for run in contenders.values():
        _bench.warm_up(run, 2, steps=1)
    times = _bench.interleaved(contenders, rounds)
    out = {}
    reference = np.median([batch / t for t in times["torchvision"]])
    for name, ts in times.items():
        rates = [batch / t for t in ts]
        out[name] = {"images_per_s": _bench.spread(rates),
                     "vs_torchvision": _bench.significant(np.median(rates) / reference)}
    return out


def export_all(model, folder, size):
    paths = {}
    rng = np.random.default_rng(0)
    calibration = (rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8),
                   np.zeros(16, np.int64))
    for fmt, suffix in FORMATS.items():
        path = os.path.join(folder, f"{model.name}{suffix}")
        if fmt == "litert_int8":
            kcnn.export(model, path, format="litert", quantize="int8",
                        representative_data=calibration)
        else:
            kcnn.export(model, path, format=fmt)
        paths[fmt] = path
    return paths


def file_bytes(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
    companion = os.path.splitext(path)[0] + ".bin"
    return os.path.getsize(path) + (os.path.getsize(companion)
                                    if path.endswith(".xml") else 0)


def child_main(args):
    """Keras on this backend against torchvision eager, in this process."""
    threads = _bench.pin_threads()
    rng = np.random.default_rng(0)
    size = args.image_size
    result = {}
    for name in args.models:
        model = build(name, size)
        result[name] = {}
        for batch in args.batches:
            x = rng.normal(size=(batch, size, size, 3)).astype("float32")
            contenders = {"torchvision": torchvision_infer(name, x),
                          f"keras_{keras.backend.backend()}": keras_infer(model, x)}
            result[name][str(batch)] = time_contenders(contenders, batch, args.rounds)
    print("RESULT " + json.dumps({"threads": threads, "models": result}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+",
                        default=["resnet50", "mobilenet_v2", "efficientnet_b0"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=_bench.RESULTS)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    if keras.backend.backend() != "tensorflow":
        parser.error("run it with KERAS_BACKEND=tensorflow (the default): the parent "
                     "exports and times the TensorFlow-side runtimes")
    threads = _bench.pin_threads()
    size = args.image_size
    rng = np.random.default_rng(0)
    record = {"benchmark": "serving", "image_size": size, "batches": args.batches,
              "rounds": args.rounds, "threads": threads, "models": {}, "file_mb": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            model = build(name, size)
            paths = export_all(model, folder, size)
            record["file_mb"][name] = {fmt: round(file_bytes(p) / 2**20, 2)
                                       for fmt, p in paths.items()}
            runtimes = {fmt: kcnn.load_model(p) for fmt, p in paths.items()}
            record["models"][name] = {}
            for batch in args.batches:
                x = rng.normal(size=(batch, size, size, 3)).astype("float32")
                contenders = {"torchvision": torchvision_infer(name, x),
                              "keras_tensorflow": keras_infer(model, x)}
                for fmt, runtime in runtimes.items():
                    contenders[fmt] = functools.partial(runtime, x)
                result = time_contenders(contenders, batch, args.rounds)
                record["models"][name][str(batch)] = result
                print(f"{name} batch {batch}: " + ", ".join(
                    f"{k} {v['images_per_s']['median']:.1f} img/s ({v['vs_torchvision']})"
                    for k, v in result.items()), flush=True)
            del runtimes
    for backend in ("jax", "torch"):
        command = [sys.executable, os.path.abspath(__file__), "--child", "--image-size",
                   str(size), "--rounds", str(args.rounds), "--models", *args.models,
                   "--batches", *map(str, args.batches)]
        env = dict(os.environ, KERAS_BACKEND=backend)
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"the {backend} child failed:\n{done.stderr[-3000:]}")
        child = json.loads(lines[-1][len("RESULT "):])
        record[f"{backend}_process_threads"] = child["threads"]
        for name, batches in child["models"].items():
            for batch, result in batches.items():
                record["models"][name][batch][f"torchvision_in_{backend}_process"] = \
                    result.pop("torchvision")
                record["models"][name][batch].update(result)
                print(f"{name} batch {batch}: keras_{backend} "
                      f"{result[f'keras_{backend}']['images_per_s']['median']:.1f} img/s "
                      f"({result[f'keras_{backend}']['vs_torchvision']})", flush=True)
    _bench.save(record, args.out, "serving", args.no_save)


if __name__ == "__main__":
    main()
