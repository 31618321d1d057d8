"""Training and inference images/s of kcnn's builders against torchvision and keras.applications.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/throughput.py [--quick | --full | --b16]
        [--models resnet50 vgg16] [--peers torchvision keras.applications]
        [--batch-size 8] [--image-size 128] [--rounds 3] [--steps 2] [--out DIR]

For each model, in one process on the current Keras backend, the contenders
are built side by side and timed round by round (each round starts with another
contender; see `_bench.interleaved`) after a few untimed warm-up steps:

- kcnn: the builder, `classifier_activation=None`, compiled with SGD
  (learning rate 0.01, momentum 0.9) and sparse cross-entropy from logits;
  a training step is `model.train_on_batch`, an inference step
  `model.predict_on_batch` (the backend's compiled functions: tf.function,
  jax.jit, torch eager);
- torchvision: the same architecture in plain eager PyTorch, the same
  optimizer and loss, `model.train()` + backward + `optimizer.step()` for
  training, `model.eval()` under `torch.inference_mode()` for inference;
- keras.applications: the same family on the same backend, compiled as kcnn.

A round times the same number of steps of each contender and mode in a row:
--steps, or as many as took about --unit-seconds in the warm-up (0.5 s in the
quick preset, 3 s in the full one; at least one). Images/s of a round is
batch x steps / seconds. The JSON keeps every round, their median, quartiles
and extremes, and the ratio kcnn / peer (above 1: kcnn is faster) of the
medians and per round. Achieved GFLOP/s count 2 FLOPs per multiply-accumulate
of the convolutions and dense layers, a training image as 3 forward passes
(forward, and backward for inputs and weights). The float32 matrix-multiply
peak (2048 x 2048, `_bench.Matmul`) is measured at the start with NumPy, torch
and the backend's library; the fastest of them then runs in every round as one
more contender, and the share of the peak is the median of the per-round
shares. Writes `throughput_<backend>.json` in --out; with --b16 (batch 16,
224x224, the issue's table) `throughput_b16_<backend>.json`. torch and
TensorFlow get the same number of compute threads (--threads, default every
usable CPU; `_bench.pin_threads`).
"""

import os

# On a GPU the backend and the torch peer share the device: neither may take it all.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import kcnn  # noqa: E402,I001  (before TensorFlow and torch: it orders triton, keras, TF)
import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import _bench  # noqa: E402

MATMUL = ("matmul", "peak")
MODELS = ("alexnet", "vgg16", "resnet50", "googlenet", "mobilenet_v2", "efficientnet_b0")
PEERS = ("torchvision", "keras.applications")
PRESETS = {
    "quick": dict(batch_size=8, image_size=128, rounds=3, steps=None, unit_seconds=0.5,
                  warmup=1),
    "full": dict(batch_size=64, image_size=224, rounds=5, steps=None, unit_seconds=3.0,
                 warmup=3),
    # The table: ImageNet's input size at a batch a 2-core CPU trains in
    # seconds. One step a round (VGG-16 trains at about 1 img/s there), and
    # rounds enough for a median; each backend's run of the six models is sized
    # to about 12 minutes on that machine (benchmarks/README.md).
    "b16": dict(batch_size=16, image_size=224, rounds=3, steps=1, unit_seconds=None,
                warmup=1),
    # benchmarks/gpu.sh on one H100 with 5 minutes for everything: a batch that
    # fills the GPU, and short rounds (the compile of the first call dominates).
    "gpu": dict(batch_size=64, image_size=224, rounds=3, steps=None, unit_seconds=1.0,
                warmup=2),
}
# The presets whose results are kept apart from the quick/full table: their file
# is throughput_<preset>_<backend>.json.
OWN_FILE = ("b16", "gpu")
# --precision: the Keras dtype policy, and the dtype torch's autocast gives the peer.
PRECISIONS = {"float32": None, "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}

# torchvision's builders have kcnn's names; googlenet without its training-only
# auxiliary heads (kcnn's default), initialised as torchvision's own check wants.
TORCHVISION_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True}}

# kcnn name -> (keras.applications class, how it differs from kcnn / torchvision).
KERAS_APPLICATIONS = {
    "vgg16": ("VGG16", "Same layers; its head flattens the last feature map as it is "
              "(kcnn and torchvision pool it to 7x7 first), so away from 224x224 its "
              "first dense layer has another size and cost."),
    "resnet50": ("ResNet50", "ResNet-50 v1: stride 2 on the first 1x1 convolution of a "
                 "downsampling block (kcnn and torchvision: v1.5, on the 3x3), and biases "
                 "on every convolution."),
    "mobilenet_v2": ("MobileNetV2", "alpha=1.0: the same blocks and trainable parameters; "
                     "stride-2 convolutions pad bottom/right-heavy (correct_pad) where "
                     "torch pads symmetrically."),
    "efficientnet_b0": ("EfficientNetB0", "The same blocks and trainable parameters; it "
                        "rescales and normalises its input inside the model (kcnn and "
                        "torchvision take normalised input) and pads stride-2 convolutions "
                        "bottom/right-heavy."),
}
NO_KERAS_APPLICATION = {
    "alexnet": "keras.applications has no AlexNet.",
    "googlenet": "keras.applications has no GoogLeNet (its InceptionV3 is another "
                 "architecture).",
}


def keras_steps(model, x, y):
    """(training step, inference step) of a Keras model on fixed numpy arrays."""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))


def torch_steps(name, x_nchw, y, autocast=None):
    """(training step, inference step, trainable parameters) of torchvision's `name`;
    under `torch.autocast` to the dtype named by `autocast` if given, with a
    gradient scaler for float16 (what Keras's mixed_float16 does with its
    LossScaleOptimizer)."""
    import torch
    import torchvision

    device = _bench.torch_device()
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None, **TORCHVISION_KWARGS.get(name, {}))
    net = net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.from_numpy(x_nchw).to(device), torch.from_numpy(y).to(device)
    cast = torch.autocast(device_type=device, dtype=getattr(torch, autocast or "float32"),
                          enabled=autocast is not None)
    scaler = torch.amp.GradScaler(device, enabled=autocast == "float16")

    def train():
        net.train()
        optimizer.zero_grad(set_to_none=True)
        with cast:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()

    def infer():
        net.eval()
        with torch.inference_mode(), cast:
            out = net(x)
        _bench.torch_sync(device)
        return out

    return train, infer, sum(p.numel() for p in net.parameters() if p.requires_grad)


def build_contenders(name, peers, shape, x, y, autocast=None):
    """{contender: {"train", "infer" steps, "params", "trainable_params", "flops",
    "flops_source", ...}} and {peer: why it is missing}."""
    contenders, missing = {}, {}
    model = kcnn.create_model(name, input_shape=shape, classifier_activation=None)
    flops, source = _bench.forward_flops(model)
    train, infer = keras_steps(model, x, y)
    contenders["kcnn"] = dict(train=train, infer=infer, params=model.count_params(),
                              trainable_params=_trainable(model), flops=flops,
                              flops_source=source)
    if "torchvision" in peers:
        x_nchw = x if keras.config.image_data_format() == "channels_first" \
            else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        try:
            train, infer, trainable = torch_steps(name, x_nchw, y, autocast)
        except Exception as error:  # a missing or broken peer must not stop the run
            missing["torchvision"] = f"failed: {error!r}"
        else:
            contenders["torchvision"] = dict(
                train=train, infer=infer, params=trainable, trainable_params=trainable,
                flops=flops, flops_source="kcnn's count (the same architecture)",
                builder=f"torchvision.models.{name}(weights=None"
                        + "".join(f", {k}={v!r}" for k, v in
                                  TORCHVISION_KWARGS.get(name, {}).items()) + ")")
    if "keras.applications" in peers:
        if name not in KERAS_APPLICATIONS:
            missing["keras.applications"] = NO_KERAS_APPLICATION[name]
        else:
            class_name, note = KERAS_APPLICATIONS[name]
            try:
                peer = getattr(keras.applications, class_name)(
                    weights=None, input_shape=shape, classes=1000,
                    classifier_activation=None)
                peer_flops, peer_source = _bench.forward_flops(peer)
                train, infer = keras_steps(peer, x, y)
            except Exception as error:
                missing["keras.applications"] = f"{class_name} failed: {error!r}"
            else:
                contenders["keras.applications"] = dict(
                    train=train, infer=infer, params=peer.count_params(),
                    trainable_params=_trainable(peer), flops=peer_flops,
                    flops_source=peer_source, builder=f"keras.applications.{class_name}",
                    note=note)
    return contenders, missing


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def benchmark_model(name, peers, config, matmul):
    size, batch = config["image_size"], config["batch_size"]
    shape = (3, size, size) if keras.config.image_data_format() == "channels_first" \
        else (size, size, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 1000, size=batch).astype("int64")

    start = time.perf_counter()
    contenders, missing = build_contenders(name, peers, shape, x, y,
                                           PRECISIONS[config["precision"]])
    build_s = time.perf_counter() - start

    # Warm-up (JAX compiles, TensorFlow traces): the first call's time is kept.
    runs, first_call, steps = {}, {}, {}
    for contender in list(contenders):
        try:
            for mode in config["modes"]:
                key = (contender, mode)
                first_call[key], steps[key] = _bench.warm_up(
                    contenders[contender][mode], config["warmup"], config["steps"],
                    config["unit_seconds"])
        except Exception as error:  # a peer that fails is reported, not fatal
            if contender == "kcnn":
                raise
            missing[contender] = f"failed in its first steps: {error!r}"
            del contenders[contender]
            continue
        for mode in config["modes"]:
            key = (contender, mode)
            runs[key] = _repeat(contenders[contender][mode], steps[key])

    # The matmul peak is a contender too: each round has its own peak.
    runs[MATMUL] = matmul.runs[matmul.library]
    times = _bench.interleaved(runs, config["rounds"])
    peaks = [matmul.gflop / t for t in times.pop(MATMUL)]
    rates = {key: [batch * steps[key] / t for t in ts] for key, ts in times.items()}

    record = {"model": name, "input_shape": list(shape), "batch_size": batch,
              "build_seconds": round(build_s, 2),
              "matmul_peak_gflops": _bench.spread(peaks),
              "contenders": {}, "ratios": {}, "missing_peers": missing}
    for contender, entry in contenders.items():
        out = {k: entry[k] for k in ("params", "trainable_params", "flops_source", "builder",
                                     "note") if k in entry}
        counted = entry["flops"] is not None
        out["forward_gflops_per_image"] = (_bench.significant(entry["flops"] / 1e9)
                                           if counted else None)
        for mode in config["modes"]:
            out[mode] = {"images_per_s": _bench.spread(rates[(contender, mode)]),
                         "steps_per_round": steps[(contender, mode)],
                         "first_call_seconds": round(first_call[(contender, mode)], 2),
                         "gflops": None, "fraction_of_peak": None}
            if counted:
                per_image = entry["flops"] * (3 if mode == "train" else 1)
                achieved = [r * per_image / 1e9 for r in rates[(contender, mode)]]
                out[mode]["gflops"] = _bench.spread(achieved)["median"]
                out[mode]["fraction_of_peak"] = _bench.spread(
                    [a / p for a, p in zip(achieved, peaks)])["median"]
        record["contenders"][contender] = out
    for peer in contenders:
        if peer != "kcnn":
            record["ratios"][peer] = {
                mode: _bench.ratio(rates[("kcnn", mode)], rates[(peer, mode)])
                for mode in config["modes"]}
    return record


def _repeat(step, steps):
    def run():
        for _ in range(steps):
            step()

    return run


def print_record(record, modes):
    print(f"\n{record['model']} {tuple(record['input_shape'])} batch {record['batch_size']}")
    print(f"  {'contender':20s} {'mode':6s} {'img/s':>8s} {'min':>8s} {'max':>8s} "
          f"{'GFLOP/s':>8s} {'peak %':>7s} {'kcnn/peer':>9s}")
    for contender, entry in record["contenders"].items():
        for mode in modes:
            m = entry[mode]
            r = record["ratios"].get(contender, {}).get(mode)
            ratio_text = f"{r['of_medians']:9.2f}" if r else ""
            flops_text = (f"{m['gflops']:8.1f} {100 * m['fraction_of_peak']:6.1f}%"
                          if m["gflops"] is not None else f"{'–':>8s} {'–':>7s}")
            print(f"  {contender:20s} {mode:6s} {m['images_per_s']['median']:8.2f} "
                  f"{m['images_per_s']['min']:8.2f} {m['images_per_s']['max']:8.2f} "
                  f"{flops_text} {ratio_text}")
    for peer, why in record["missing_peers"].items():
        print(f"  no {peer}: {why}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _bench.add_common_arguments(parser, {
        "b16": "batch 16 at 224x224 on a 2-core CPU, the README's table for every backend; "
               "throughput_b16_<backend>.json",
        "gpu": "batch 64 at 224x224, short rounds: benchmarks/gpu.sh's preset; "
               "throughput_gpu_<backend>.json"})
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME",
                        help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), metavar="PEER",
                        help=f"any of {', '.join(PEERS)} (default: both; none: kcnn alone)")
    parser.add_argument("--modes", nargs="+", default=["train", "infer"],
                        choices=["train", "infer"])
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--unit-seconds", type=float,
                        help="without --steps, each contender runs as many steps a round as "
                             "take about this long (default: the preset's)")
    parser.add_argument("--data-format", choices=["channels_last", "channels_first"],
                        help="Keras image data format (default: keras.config's)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="float32",
                        help="the Keras dtype policy of kcnn and keras.applications; "
                             "torchvision runs under torch.autocast to the same compute "
                             "dtype (default float32)")
    args = parser.parse_args()
    for model in args.models:
        if model not in MODELS:
            raise ValueError(f"--models: unknown model {model!r}; choose from "
                             f"{', '.join(MODELS)}.")
    for peer in args.peers:
        if peer not in PEERS:
            raise ValueError(f"--peers: unknown peer {peer!r}; choose from "
                             f"{', '.join(PEERS)}.")
    config = _bench.settings(args, PRESETS)
    if config["steps"] is None and not config["unit_seconds"] > 0:
        raise ValueError(f"--unit-seconds must be positive; received {config['unit_seconds']!r}.")
    config["modes"] = args.modes
    config["precision"] = args.precision
    if args.data_format:
        keras.config.set_image_data_format(args.data_format)

    config["threads"] = _bench.pin_threads(args.threads)
    keras.config.set_dtype_policy(args.precision)

    backend = keras.backend.backend()
    print(f"throughput on {backend} ({keras.config.image_data_format()}), {config}")
    matmul = _bench.Matmul()
    peak = matmul.measure()
    print(f"float32 matmul peak: {peak['peak_gflops']:.1f} GFLOP/s ({peak['peak_from']}; "
          + ", ".join(f"{k} {v['median']:.1f}" for k, v in peak["gflops"].items()) + ")")

    start = time.perf_counter()
    records = []
    for name in args.models:
        record = benchmark_model(name, args.peers, config, matmul)
        print_record(record, config["modes"])
        records.append(record)
        keras.backend.clear_session()  # resets the dtype policy too
        keras.config.set_dtype_policy(args.precision)
        gc.collect()

    result = {"benchmark": "throughput", "settings": config,
              "flops_convention": "2 per multiply-accumulate of convolutions and dense "
                                  "layers; a training image counts 3 forward passes",
              "ratio_convention": "kcnn images/s / peer images/s (above 1: kcnn faster)",
              "matmul_peak": peak, "models": records,
              "seconds": round(time.perf_counter() - start, 1)}
    suffix = "" if keras.config.image_data_format() == "channels_last" else "_channels_first"
    suffix += "" if args.precision == "float32" else f"_{args.precision}"
    kind = f"throughput_{config['preset']}" if config["preset"] in OWN_FILE else "throughput"
    _bench.save(result, args.out, f"{kind}_{backend}{suffix}", args.no_save)


if __name__ == "__main__":
    main()
