"""`kcnn evaluate MODEL.keras --data SOURCE`: loss, top-1/top-5 and a per-class report."""

import kcnn
from kcnn.cli import _shared


def register(commands):
    """Add `evaluate` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser("evaluate", help="loss, top-1/top-5 and a per-class report")
    p.add_argument("model", help="a .keras file or a file kcnn export wrote")
    p.add_argument("--data", default="digits", help="data source, as for train")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.set_defaults(run=_evaluate)


def _evaluate(args):
    result = kcnn.evaluate(_shared.load_model(args.model, exported=True), args.data, split=args.split,
                           batch_size=args.batch_size)
    print(f"loss {result['loss']:.4f}  top1 {result['top1']:.4f}  top5 {result['top5']:.4f}")
    print(f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
    for name, row in result["per_class"].items():
        print(f"{name:<20} {row['precision']:9.3f} {row['recall']:9.3f} {row['f1']:9.3f} "
              f"{row['support']:8d}")
    return 0
