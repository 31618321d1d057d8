"""The `kcnn` command line. It runs on the backend named by KERAS_BACKEND.

    kcnn list [PATTERN]
    kcnn summary MODEL
    kcnn train MODEL --data SOURCE [--epochs N] [--recipe R] [--out DIR]
    kcnn evaluate MODEL.keras --data SOURCE [--split test]
    kcnn predict MODEL.keras IMAGE... [--top-k 5]
    kcnn convert MODEL WEIGHTS.pth OUT.weights.h5 [--classes N] [--overwrite]
    kcnn export MODEL.keras PATH [--format saved_model|onnx|keras] [--overwrite]
    kcnn explain MODEL.keras IMAGE... [--out DIR] [--layer L] [--class-index K]
    kcnn tune --model NAME --data SOURCE [--tuner random|bayesian|hyperband]
              [--epochs E --max-trials N | --max-epochs M --factor F] --directory DIR
    kcnn finetune MODEL.keras --data DIR [--epochs N] [--unfreeze gradual|all|none|N] [--out DIR]
    kcnn preview [--data SOURCE] [--augment ...] --out PNG
    kcnn weights [PATTERN]          (the pretrained weights table)
    kcnn fetch MODEL [WEIGHTS]      (fill the weights cache ahead of time)
"""

import argparse
import os
import sys

import kcnn  # first: orders triton, keras and TensorFlow imports
from kcnn.training.train import add_train_options, train_options


def _list(args):
    print(f"{'model':<20} {'parameters':>13} {'GMACs':>8}")
    for name in kcnn.list_models(args.pattern):
        costs = kcnn.inspect.model_costs(name)
        print(f"{name:<20} {costs.trainable_params:>13,} {costs.macs / 1e9:>8.3f}")
    print("GMACs: billions of multiply-accumulates per image at the reference input size "
          "(torchvision calls them GFLOPS).")
    return 0


def _summary(args):
    print(kcnn.profile(args.model))
    return 0


def _train(args):
    history = kcnn.train(args.model, args.data, epochs=args.epochs,
                         batch_size=args.batch_size, recipe=args.recipe,
                         out_dir=args.out, overwrite=args.overwrite,
                         strategy=args.strategy, seed=args.seed, verbose=2,
                         **train_options(args))
    model = history.model
    print(f"trained {model.name} for {len(history.epoch)} epochs; files in {args.out}")
    return 0


def _load(path):
    import keras

    if not os.path.isfile(path):
        raise ValueError(f"MODEL={path!r}: no such file (expected a .keras file).")
    return keras.saving.load_model(path)


def _evaluate(args):
    result = kcnn.evaluate(_load(args.model), args.data, split=args.split,
                           batch_size=args.batch_size)
    print(f"loss {result['loss']:.4f}  top1 {result['top1']:.4f}  top5 {result['top5']:.4f}")
    print(f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
    for name, row in result["per_class"].items():
        print(f"{name:<20} {row['precision']:9.3f} {row['recall']:9.3f} {row['f1']:9.3f} "
              f"{row['support']:8d}")
    return 0


def _predict(args):
    results = kcnn.predict(_load(args.model), args.images, top_k=args.top_k)
    for path, ranked in zip(args.images, results):
        print(path)
        for name, p in ranked:
            print(f"  {p:7.4f}  {name}")
    return 0


def _convert(args):
    if not args.output.endswith(".weights.h5"):
        raise SystemExit(f"kcnn convert: OUTPUT must end in '.weights.h5'; got {args.output!r}.")
    if os.path.exists(args.output) and not args.overwrite:
        raise SystemExit(
            f"kcnn convert: {args.output!r} exists; pass --overwrite to replace it."
        )
    kwargs = {"classes": args.classes} if args.classes else {}
    if args.include_top is False:
        kwargs["include_top"] = False
    model = kcnn.create_model(args.model, weights=args.weights, **kwargs)
    model.save_weights(args.output, overwrite=True)
    print(f"wrote {args.output} ({model.count_params():,} parameters of {args.model})")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kcnn", description="Classic CNNs as Keras 3 models. The backend is "
        "KERAS_BACKEND (tensorflow, jax or torch).")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("list", help="list the models with parameters and GMACs")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style filter such as 'resnet*' (default: all)")
    p.set_defaults(run=_list)

    p = commands.add_parser(
        "summary", help="per layer: output shape, parameters, MACs, receptive field")
    p.add_argument("model", help="builder name, e.g. alexnet")
    p.set_defaults(run=_summary)

    p = commands.add_parser(
        "train", help="train a model on a data source",
        description="Train a kcnn model with a recipe; writes logs, checkpoints, plots "
        "and model.keras to --out. Run again with the same --out to resume.")
    p.add_argument("model", help="builder name, e.g. lenet5")
    p.add_argument("--data", default="digits",
                   help="'digits' (offline, default), a tensorflow-datasets name or an "
                   "image folder with one sub-folder per class")
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch size (default: the recipe's)")
    p.add_argument("--recipe", default="default", help="'default' or 'alexnet2012'")
    p.add_argument("--strategy", default=None,
                   help="'mirrored' (TensorFlow, all GPUs) or 'data_parallel' (JAX)")
    p.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    p.add_argument("--overwrite", action="store_true",
                   help="train again into a folder that holds a finished run")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_train_options(p)
    p.set_defaults(run=_train)

    p = commands.add_parser("evaluate", help="loss, top-1/top-5 and a per-class report")
    p.add_argument("model", help="a .keras file")
    p.add_argument("--data", default="digits", help="data source, as for train")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("predict", help="top-k class names for image files")
    p.add_argument("model", help="a .keras file")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    p.add_argument("--top-k", type=int, default=5, help="classes to show (default 5)")
    p.set_defaults(run=_predict)

    p = commands.add_parser(
        "convert", help="convert a torchvision .pth state dict into a Keras .weights.h5 file",
        description="Convert a torchvision state dict (.pth) once into a Keras "
        "'.weights.h5' file for a kcnn builder, so later loads need no torch.")
    p.add_argument("model", help="builder name, e.g. resnet50 (see 'kcnn list')")
    p.add_argument("weights", help="the .pth file (torch.save(model.state_dict(), path))")
    p.add_argument("output", help="where to write the .weights.h5 file")
    p.add_argument("--classes", type=int, default=None,
                   help="number of classes of the state dict's classifier (default: the builder's)")
    p.add_argument("--no-top", dest="include_top", action="store_false", default=None,
                   help="convert the feature extractor only (include_top=False)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT if it exists (default: refuse)")
    p.set_defaults(run=_convert)

    from kcnn import exporting, inspect, transfer, tuning
    from kcnn.weights import commands as weight_commands

    exporting.add_commands(commands)
    inspect.add_commands(commands)
    weight_commands.add_commands(commands)
    kcnn.data.pipeline.add_commands(commands)
    tuning.add_commands(commands)
    transfer.add_commands(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as e:
        print(f"kcnn {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
