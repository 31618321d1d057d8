"""`kcnn list [PATTERN]` and `kcnn summary MODEL`: the builders, before any training."""

import kcnn


def register(commands):
    """Add `list` and `summary` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser("list", help="list the models with parameters and GMACs")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style filter such as 'resnet*' (default: all)")
    p.set_defaults(run=_list)

    p = commands.add_parser(
        "summary", help="per layer: output shape, parameters, MACs, receptive field")
    p.add_argument("model", help="builder name, e.g. alexnet")
    p.set_defaults(run=_summary)


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
