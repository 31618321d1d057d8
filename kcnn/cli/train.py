"""`kcnn train MODEL --data SOURCE ...`: `kcnn.train` with a recipe and the training menu."""

import kcnn
from kcnn.cli import _shared
from kcnn.data import augment as augment_ops


def register(commands):
    """Add `train` to the sub-parsers of `kcnn.cli.build_parser()`."""
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
    _shared.add_recipe(p)
    p.add_argument("--lr", type=float, default=None,
                   help="starting learning rate, the peak for one-cycle (default: the "
                   "recipe's)")
    p.add_argument("--strategy", default=None,
                   help="'mirrored' (TensorFlow, all GPUs) or 'data_parallel' (JAX)")
    _shared.add_out(p, default="runs/train", help="output folder (default runs/train)")
    p.add_argument("--overwrite", action="store_true",
                   help="train again into a folder that holds a finished run")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_menu(p)
    p.set_defaults(run=_train)


def add_menu(parser):
    """The training-menu flags: --augment, --schedule, --loss, --label-smoothing,
    --class-weight, --init (`menu(args)` turns them into `kcnn.train` arguments)."""
    parser.add_argument("--augment", nargs="+", default=None, metavar="OPTION",
                        help=_shared.AUGMENT_HELP + "; changes the recipe's augmentation")
    parser.add_argument("--schedule", nargs="+", default=None, metavar="ARG",
                        help="learning-rate schedule and its torch arguments, e.g. "
                        "'cosine', 'step step_size=30 gamma=0.1', 'multistep "
                        "milestones=30,60', 'onecycle pct_start=0.25', 'plateau "
                        "patience=5', 'constant' (default: the recipe's)")
    parser.add_argument("--loss", nargs="+", default=None, metavar="ARG",
                        help="'crossentropy' (default) or 'focal', with arguments, e.g. "
                        "'focal gamma=2 alpha=0.25'")
    parser.add_argument("--label-smoothing", type=float, default=None,
                        help="label smoothing for cross-entropy (default: the recipe's)")
    parser.add_argument("--class-weight", default=None, choices=["balanced"],
                        help="'balanced': weight each class by n / (classes * count)")
    parser.add_argument("--init", default=None,
                        help="weight initialisation: 'keras', 'torchvision' or, for "
                        "alexnet, 'paper' (default: the builder's)")


def menu(args):
    """The `kcnn.train` keyword arguments of the flags `add_menu` added."""
    def named(tokens):
        if not tokens:
            return None
        options = augment_ops.parse_options(tokens[1:])
        return {"name": tokens[0], **options} if options else tokens[0]

    return {"augment": args.augment, "schedule": named(args.schedule),
            "loss": named(args.loss), "label_smoothing": args.label_smoothing,
            "class_weight": args.class_weight, "init": args.init}


def _train(args):
    history = kcnn.train(args.model, args.data, epochs=args.epochs,
                         batch_size=args.batch_size, recipe=args.recipe,
                         learning_rate=args.lr, out_dir=args.out, overwrite=args.overwrite,
                         strategy=args.strategy, seed=args.seed, verbose=2, **menu(args))
    model = history.model
    # A resumed run fits only the epochs left; history.epoch numbers them.
    epochs = history.epoch[-1] + 1 if history.epoch else 0
    print(f"trained {model.name} for {epochs} epochs; files in {args.out}")
    return 0
