"""The torch backend's convolutions: kcnn's view of the activations against Keras's copies.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/conv_torch.py [--rounds 5]
        [--models resnet50 mobilenet_v2 vgg16] [--batch-size 16] [--image-size 224]

Keras's torch convolution copies a channels-last input to (N, C, H, W) and
then again into torch's channels_last memory format, for every convolution;
`kcnn.layers` calls `torch.nn.functional.conv2d` on the permuted view, which
already is that format (`kcnn/layers/conv.py`, `_VIEW_CONV_BACKENDS`). The
switch is read at call time, so one model in one process runs both ways:
"kcnn" (the view) and "keras_conv" (the switch emptied: Keras's
`ops.conv` / `ops.depthwise_conv`), timed in interleaved rounds
(`_bench.interleaved`) after a warm-up, training (`train_on_batch`, SGD,
sparse cross-entropy) and inference (`predict_on_batch`).

Writes benchmarks/results/conv_torch.json: per model and mode the seconds per
step of each round, and kcnn's time / keras_conv's (below 1 is faster).
"""

import kcnn  # noqa: I001  (first: it orders triton, keras and TensorFlow)
import argparse
import contextlib

import keras
import numpy as np

import _bench
from kcnn.layers import conv


@contextlib.contextmanager
def keras_convolutions():
    saved = conv._VIEW_CONV_BACKENDS
    conv._VIEW_CONV_BACKENDS = ()
    try:
        yield
    finally:
        conv._VIEW_CONV_BACKENDS = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2", "vgg16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=_bench.RESULTS)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if keras.backend.backend() != "torch":
        parser.error("run it with KERAS_BACKEND=torch: the view is the torch backend's lever")
    threads = _bench.pin_threads()
    rng = np.random.default_rng(0)
    size = args.image_size
    record = {"benchmark": "conv_torch", "batch_size": args.batch_size, "image_size": size,
              "rounds": args.rounds, "threads": threads, "models": {}}
    for name in args.models:
        keras.utils.set_random_seed(0)
        model = getattr(kcnn, name)(input_shape=(size, size, 3), classes=1000)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=False))
        x = rng.normal(size=(args.batch_size, size, size, 3)).astype("float32")
        y = rng.integers(0, 1000, size=args.batch_size)
        steps = {"train": lambda: model.train_on_batch(x, y),
                 "infer": lambda: model.predict_on_batch(x)}
        # The two forms compute the same outputs (tests/layers/test_conv.py).
        with keras_convolutions():
            reference = np.asarray(model.predict_on_batch(x))
        np.testing.assert_allclose(np.asarray(model.predict_on_batch(x)), reference,
                                   rtol=1e-3, atol=1e-5)
        result = {}
        for mode, step in steps.items():
            def keras_step(step=step):
                with keras_convolutions():
                    step()

            runs = {"kcnn": step, "keras_conv": keras_step}
            for run in runs.values():
                _bench.warm_up(run, 1, steps=1)
            times = _bench.interleaved(runs, args.rounds)
            ratio = _bench.ratio(times["kcnn"], times["keras_conv"])
            result[mode] = {"seconds": {k: _bench.spread(v) for k, v in times.items()},
                            "kcnn_over_keras_conv": ratio}
            print(f"{name:14s} {mode}: kcnn {np.median(times['kcnn']):.3f} s, Keras's conv "
                  f"{np.median(times['keras_conv']):.3f} s, ratio {ratio['of_medians']}",
                  flush=True)
        record["models"][name] = result
    _bench.save(record, args.out, "conv_torch", args.no_save)


if __name__ == "__main__":
    main()
