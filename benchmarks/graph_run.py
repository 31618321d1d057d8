"""What torch's eager execution pays for Keras's way of running a functional graph.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/graph_run.py
        [--models resnet50 mobilenet_v2 efficientnet_b0] [--batch-size 16]
        [--image-size 224] [--rounds 5] [--threads 2] [--modes train infer]
        [--contenders not_in_place torchvision]

kcnn's levers for torch's eager execution, measured on one model each (the same weights, one
process, interleaved rounds after a warm-up, `_bench.interleaved`):

- "kcnn": the model as built: its graph run releases each intermediate tensor
  after its last use (`kcnn._keras_internal.run_graph_releasing`), and on torch
  each convolution's channels_last weight is kept while the kernel is
  unchanged and autograd is off (`kcnn.layers.conv._torch_weight`);
- "not_in_place": the same model releasing its intermediates but computing
  every activation, residual sum, squeeze-and-excitation product and (in
  inference) batch norm into a new tensor (torch only; `kcnn.layers.inplace`
  is what differs);
- "keras_call" (torch only): the same model calling every layer through
  Keras's `Layer.__call__` in inference too, where kcnn's runs each layer's
  `call` directly with autograd off (`kcnn._keras_internal.inference_call`);
- "keras_graph_run": the same model run by Keras's own `Functional.call` and
  `Functional._run_through_graph`, which keeps every intermediate until the
  whole graph has run, computes every activation into a new tensor and calls
  every layer through `Layer.__call__`;
- "weight_copy": the same model copying every kernel to channels_last on
  every call (torch only; the cache is what differs);
- "folded" (inference only): the model with its batch norms folded into the
  convolutions, which is what `kcnn.predict`, `kcnn.evaluate` and the graph
  exports run (`kcnn.fold_batch_norm`);
- "torchvision": the same architecture, eager PyTorch, as in
  benchmarks/throughput.py (torch only).

A training step is `train_on_batch` (SGD with momentum, sparse cross-entropy
from logits), an inference step `predict_on_batch`, as in
benchmarks/throughput.py. Writes results/graph_run_<backend>.json: per model,
mode and contender the seconds per step of every round and their spread, and
each contender's median time ratio to "kcnn" (above 1: slower than kcnn) with
the spread of the per-round ratios.
"""

import kcnn  # noqa: I001  (before TensorFlow and torch: it orders triton, keras, TF)
import argparse
import types

import keras
import numpy as np

import _bench
from kcnn import _keras_internal as internal
from kcnn.layers import conv
from throughput import keras_steps, torch_steps

BACKEND = keras.backend.backend()
MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0")
PRESETS = {"quick": dict(batch_size=16, image_size=224, rounds=5, warmup=2, steps=1)}


def _copying_weight(kernel, depthwise, channels_last):
    """`_torch_weight` without its cache: a fresh copy on every call."""
    kernel.__dict__.pop("_kcnn_torch_weight", None)
    return _cached_weight(kernel, depthwise, channels_last)


_cached_weight = conv._torch_weight


def _with_weight(function, step):
    def run():
        conv._torch_weight = function
        try:
            return step()
        finally:
            conv._torch_weight = _cached_weight
    return run


def _twin(name, shape, model, **methods):
    """Another `name` with `model`'s weights, whose named methods are replaced by
    the given functions (bound to it): one lever undone, the rest as built."""
    twin = kcnn.create_model(name, input_shape=shape, classifier_activation=None)
    twin.set_weights(model.get_weights())
    for method, function in methods.items():
        object.__setattr__(twin, method, types.MethodType(function, twin))
    return twin


def _releasing_not_in_place(self, inputs, operation_fn=lambda op: op, call_fn=None):
    return internal.run_graph_releasing(self, inputs, operation_fn)


def contenders(name, shape, x, y):
    model = kcnn.create_model(name, input_shape=shape, classifier_activation=None)
    functional = next(c for c in type(model).__mro__ if c.__name__ == "Functional")
    keras_run = _twin(name, shape, model, call=functional.call,
                      _run_through_graph=functional._run_through_graph)
    runs = {"kcnn": keras_steps(model, x, y), "keras_graph_run": keras_steps(keras_run, x, y)}
    if BACKEND == "torch":
        keras_call = _twin(name, shape, model, call=functional.call)
        runs["keras_call"] = (None, keras_steps(keras_call, x, y)[1])
        copying = _twin(name, shape, model, _run_through_graph=_releasing_not_in_place)
        runs["not_in_place"] = keras_steps(copying, x, y)
    folded = kcnn.fold_batch_norm(model)
    runs["folded"] = (None, lambda: folded.predict_on_batch(x))
    if BACKEND == "torch":
        train, infer = keras_steps(model, x, y)
        runs["weight_copy"] = (_with_weight(_copying_weight, train),
                               _with_weight(_copying_weight, infer))
        train, infer, _ = torch_steps(name, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y)
        runs["torchvision"] = (train, infer)
    return model, keras_run, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _bench.add_common_arguments(parser)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--modes", nargs="+", default=["train", "infer"],
                        choices=["train", "infer"])
    parser.add_argument("--contenders", nargs="+", metavar="NAME",
                        help="time only these besides \"kcnn\" (default: all of them)")
    args = parser.parse_args()
    s = _bench.settings(args, PRESETS)
    threads = _bench.pin_threads(args.threads)
    rng = np.random.default_rng(0)
    shape = (s["image_size"], s["image_size"], 3)
    x = rng.normal(size=(s["batch_size"],) + shape).astype("float32")
    y = rng.integers(0, 1000, size=(s["batch_size"],)).astype("int64")
    record = {"benchmark": "graph_run", "modes": args.modes, "batch_size": s["batch_size"],
              "image_size": s["image_size"], "rounds": s["rounds"], "threads": threads,
              "models": {}}
    for name in args.models:
        model, keras_run, runs = contenders(name, shape, x, y)
        np.testing.assert_allclose(keras_run.predict_on_batch(x), model.predict_on_batch(x),
                                   rtol=1e-4, atol=1e-4)
        record["models"][name] = {}
        unknown = set(args.contenders or ()) - set(runs)
        if unknown:
            raise ValueError(f"--contenders: unknown {sorted(unknown)}; choose from "
                             f"{', '.join(sorted(runs))}.")
        for index, mode in enumerate(("train", "infer")):
            if mode not in args.modes:
                continue
            steps = {c: r[index] for c, r in runs.items() if r[index] is not None
                     and (c == "kcnn" or args.contenders is None or c in args.contenders)}
            for step in steps.values():
                _bench.warm_up(step, s["warmup"], steps=1)
            times = _bench.interleaved(steps, s["rounds"])
            result = {c: {"seconds": _bench.spread(t)} for c, t in times.items()}
            for c in result:
                result[c]["time_vs_kcnn"] = _bench.ratio(times[c], times["kcnn"])
            record["models"][name][mode] = result
            print(name, mode, {c: r["time_vs_kcnn"]["of_medians"] for c, r in result.items()},
                  flush=True)
        del model, keras_run, runs
    _bench.save(record, args.out, f"graph_run_{BACKEND}", args.no_save)


if __name__ == "__main__":
    main()
