"""`kcnn convert MODEL WEIGHTS.pth OUT.weights.h5`: a torchvision state dict, once, into Keras."""

import os

import kcnn


def register(commands):
    """Add `convert` to the sub-parsers of `kcnn.cli.build_parser()`."""
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


def _convert(args):
    if not args.output.endswith(".weights.h5"):
        raise ValueError(f"OUTPUT must end in '.weights.h5'; got {args.output!r}.")
    if os.path.exists(args.output) and not args.overwrite:
        raise ValueError(f"{args.output!r} exists; pass --overwrite to replace it.")
    kwargs = {"classes": args.classes} if args.classes else {}
    if args.include_top is False:
        kwargs["include_top"] = False
    model = kcnn.create_model(args.model, weights=args.weights, **kwargs)
    model.save_weights(args.output, overwrite=True)
    print(f"wrote {args.output} ({model.count_params():,} parameters of {args.model})")
    return 0
