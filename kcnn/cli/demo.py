"""`kcnn demo` (also `python -m kcnn.demo`, behind `make digits`): LeNet-5 on the digits."""

from kcnn import demo
from kcnn.cli import _shared


def register(commands):
    """Add `demo` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "demo", help="train LeNet-5 on the bundled digits, print test accuracy, save it",
        description="Train LeNet-5 on the offline digits with the default recipe, print "
        "the held-out test accuracy and save the model as a new .keras file in --out.")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the recipe's, 20 for digits)")
    _shared.add_out(p, default="runs", help="folder for the saved model (default runs/)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=_demo)


def _demo(args):
    result = demo.digits(epochs=args.epochs, out=args.out, seed=args.seed)
    print(f"LeNet-5 on the {result['examples']} held-out digits: test accuracy "
          f"{result['top1']:.4f} ({result['seconds']:.0f} s on the {result['backend']} "
          f"backend)")
    print(f"saved {result['path']}")
    return 0


def main(argv=None):
    """`python -m kcnn.demo [--epochs N] [--out DIR] [--seed S]`; the exit code."""
    return _shared.standalone(register, "python -m kcnn.demo", argv)
