"""Images/s of kcnn's augmenting tf.data pipeline against the rate AlexNet trains at.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/pipeline.py [--quick | --full]
        [--batch-size 32] [--rounds 3] [--steps 3] [--pipeline-batches 8] [--out DIR]

The pipeline is `kcnn.data.train_pipeline` with the alexnet2012 recipe's
augmentation (random 224x224 crop of the image resized to 256 on its shorter
side, horizontal flip, PCA lighting noise) and `kcnn.alexnet()`'s preprocessing
record, on synthetic images (smooth random colour fields, so that JPEG sizes
and decoding times are those of photographs rather than of noise). Contenders,
interleaved round by round in one process:

- pipeline, uint8 arrays: 256x256 images held in memory (`kcnn.data.load((x, y))`):
  crops, flips, lighting, normalisation and batching alone;
- pipeline, JPEG files: 500x375 JPEGs in an image folder (ImageNet's typical
  size), decoded and resized as well;
- AlexNet training: `train_on_batch` on one batch held in memory, with the
  recipe's optimizer (SGD, momentum 0.9, coupled weight decay), at 224x224;
- AlexNet training fed by the JPEG pipeline: the same steps on its batches
  (tf tensors on TensorFlow, NumPy arrays on JAX and torch, as Keras's
  adapters hand them over), input and compute sharing the cores.

Each pipeline round opens a fresh iterator (shuffle buffer and prefetch
filled inside the timing: a little pessimistic for the pipeline) and pulls
`pipeline_batches` batches; an AlexNet round runs `steps` steps. The ratio
pipeline / training above 1 means the input keeps up; the issue's target is 3.
Writes `pipeline_<backend>.json` in --out.
"""

import kcnn  # noqa: I001  (first: it orders triton, keras and TensorFlow)
import argparse
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import _bench
from kcnn.training.recipes import get_recipe

PRESETS = {
    "quick": dict(batch_size=32, rounds=3, steps=3, warmup=1, pipeline_batches=8,
                  images=256, jpeg_files=128),
    "full": dict(batch_size=128, rounds=5, steps=10, warmup=3, pipeline_batches=40,
                 images=1024, jpeg_files=1024),
}
TARGET = 3.0


def smooth_images(n, height, width, seed=0):
    """n uint8 RGB images: random 8x8 colour fields upsampled, with mild noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, 8, 8, 3)).astype("float32")
    images = tf.image.resize(coarse, (height, width), method="bicubic").numpy()
    images += rng.normal(0, 6, size=images.shape).astype("float32")
    return np.clip(images, 0, 255).astype("uint8")


def jpeg_folder(root, n, seed=0):
    """An image folder of n 500x375 JPEGs (quality 90) in two class sub-folders."""
    for i, image in enumerate(smooth_images(n, 375, 500, seed)):
        folder = os.path.join(root, f"class_{i % 2}")
        os.makedirs(folder, exist_ok=True)
        tf.io.write_file(os.path.join(folder, f"{i:05d}.jpg"),
                         tf.io.encode_jpeg(image, quality=90))
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _bench.add_common_arguments(parser)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--pipeline-batches", type=int,
                        help="batches a pipeline round pulls (default: the preset's)")
    args = parser.parse_args()
    config = _bench.settings(args, PRESETS)
    if config["pipeline_batches"] < 1:
        raise ValueError(f"--pipeline-batches must be a positive integer; received "
                         f"{config['pipeline_batches']!r}.")
    backend = keras.backend.backend()
    print(f"pipeline on {backend}, {config}")
    batch = config["batch_size"]

    recipe = get_recipe("alexnet2012")
    augment = recipe.augmentation(small_grayscale=False)
    model = kcnn.alexnet(classifier_activation=None)
    preprocessing = model.metadata["preprocessing"]
    model.compile(optimizer=recipe.make_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    rng = np.random.default_rng(0)
    images = smooth_images(config["images"], 256, 256)
    labels = rng.integers(0, 10, size=len(images))
    in_memory = kcnn.data.train_pipeline(
        kcnn.data.load((images, labels)), preprocessing, batch_size=batch,
        augment=augment, seed=0).repeat()
    with tempfile.TemporaryDirectory(prefix="kcnn-bench-jpeg-") as root:
        jpeg_folder(root, config["jpeg_files"])
        jpeg = kcnn.data.train_pipeline(
            kcnn.data.load(root, verify="header"), preprocessing, batch_size=batch,
            augment=augment, seed=0).repeat()
        x0, y0 = next(iter(in_memory))
        x0, y0 = x0.numpy(), y0.numpy()
        as_keras_input = (lambda t: t) if backend == "tensorflow" else (lambda t: t.numpy())

        def pull(ds, n):
            def run():
                for _ in ds.take(n):
                    pass

            return run

        def train_in_memory():
            for _ in range(config["steps"]):
                model.train_on_batch(x0, y0)

        def train_fed():
            for x, y in jpeg.take(config["steps"]):
                model.train_on_batch(as_keras_input(x), as_keras_input(y))

        n = config["pipeline_batches"]
        runs = {"pipeline, uint8 arrays 256x256": pull(in_memory, n),
                "pipeline, JPEG files 500x375": pull(jpeg, n),
                "AlexNet training, batch in memory": train_in_memory,
                "AlexNet training fed by the JPEG pipeline": train_fed}
        images_per_run = {name: batch * (n if name.startswith("pipeline") else config["steps"])
                          for name in runs}

        def first_step(name):  # one batch or one training step
            if name.startswith("pipeline"):
                return pull(in_memory if "arrays" in name else jpeg, 1)
            return lambda: model.train_on_batch(x0, y0)

        first_call = {name: round(_bench.warm_up(first_step(name), config["warmup"],
                                                 steps=1)[0], 2) for name in runs}
        times = _bench.interleaved(runs, config["rounds"])

    rates = {name: [images_per_run[name] / t for t in ts] for name, ts in times.items()}
    training = rates["AlexNet training, batch in memory"]
    result = {
        "benchmark": "pipeline", "settings": config, "target_ratio": TARGET,
        "augment": repr(augment), "preprocessing": dict(preprocessing),
        "first_call_seconds": first_call,
        "images_per_s": {name: _bench.spread(r) for name, r in rates.items()},
        "pipeline_over_training": {
            name: _bench.ratio(rates[name], training)
            for name in runs if name.startswith("pipeline")},
        "fed_over_in_memory": _bench.ratio(
            rates["AlexNet training fed by the JPEG pipeline"], training),
    }
    print(f"{'contender':45s} {'img/s':>8s} {'min':>8s} {'max':>8s}")
    for name, s in result["images_per_s"].items():
        print(f"{name:45s} {s['median']:8.1f} {s['min']:8.1f} {s['max']:8.1f}")
    for name, r in result["pipeline_over_training"].items():
        verdict = "meets" if r["of_medians"] >= TARGET else "MISSES"
        print(f"{name} / AlexNet training: {r['of_medians']:.2f}x "
              f"({verdict} the target of {TARGET}x)")
    print(f"training fed by the pipeline / from memory: "
          f"{result['fed_over_in_memory']['of_medians']:.2f}x")
    _bench.save(result, args.out, f"pipeline_{backend}", args.no_save)


if __name__ == "__main__":
    main()
