"""`kcnn tune MODEL`: a keras-tuner search of a model's learning rate and dropout.

    kcnn tune lenet5 --data digits --tuner random --max-trials 10 --epochs 5 \\
              --out runs/tune/lenet5

The same command runs as `python -m kcnn.tuning ...` and behind the ready jobs
in `tuning/` (`main`). The search itself is `kcnn.tuning.tune`; this module
only turns the command line into its arguments and its result into lines.
"""

import os
import sys

from kcnn import tuning
from kcnn.cli import _shared


def register(commands):
    """Add `tune` to `commands`, the sub-parsers of the `kcnn` parser."""
    p = commands.add_parser(
        "tune", help="search learning rate and dropout with keras-tuner",
        description="Search a model's learning rate and dropout (and optionally optimizer "
        "and weight decay) with keras-tuner; writes best_hyperparameters.json, trials.csv, "
        "tuning.png and best_model.keras to --out. Run again to continue.")
    _shared.add_model(p, help="builder name, e.g. lenet5")
    p.add_argument("--data", default="digits",
                   help="'digits' (offline, default), a tensorflow-datasets name or an "
                   "image folder, as for train")
    p.add_argument("--tuner", default="random", choices=tuning.TUNERS, help="default random")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per trial, random and bayesian (default 5)")
    p.add_argument("--max-trials", type=int, default=None,
                   help="trial budget, random and bayesian (default 10); raise it and run "
                   "again to add trials")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="hyperband: most epochs per model (default 10)")
    p.add_argument("--factor", type=int, default=None,
                   help="hyperband: reduction factor (default 3)")
    _shared.add_out(p, default="runs/tune", aliases=("--directory",),
                    help="search folder (default runs/tune); shared by chief and workers")
    p.add_argument("--space", action="append", default=[], metavar="NAME=SPEC",
                   help="override the search space: learning_rate=1e-4:1e-2 (a range), "
                   "optimizer=adamw,sgd (a choice), dropout=0.3 (fixed), dropout=none "
                   "(not tuned); names: " + ", ".join(tuning.HYPERPARAMETERS))
    _shared.add_recipe(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch size (default: the recipe's)")
    p.add_argument("--image-size", type=int, default=None,
                   help="train at this square size (default: as kcnn train)")
    p.add_argument("--strategy", default=None,
                   help="'mirrored' (TensorFlow) or 'data_parallel' (JAX)")
    p.add_argument("--mixed-precision", default=None,
                   choices=("mixed_float16", "mixed_bfloat16"))
    p.add_argument("--final-epochs", type=int, default=None,
                   help="epochs to retrain the best values (default: --epochs or "
                   "--max-epochs)")
    p.add_argument("--no-retrain", dest="retrain", action="store_false",
                   help="do not retrain the best values into best_model.keras")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another search in --out (chief only)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=run)


def run(args):
    """`kcnn tune`: the parsed arguments in, an exit code out.

    The budget options are checked once, by `kcnn.tuning.tune`; its ValueError
    becomes the command's one-line error.
    """
    if args.model is None:
        raise ValueError("MODEL is required: a builder name such as lenet5 "
                         "(see kcnn list).")
    try:
        result = tuning.tune(
            args.model, args.data, directory=args.out, tuner=args.tuner,
            epochs=args.epochs, max_trials=args.max_trials, max_epochs=args.max_epochs,
            factor=args.factor, space=tuning.parse_space(args.space), recipe=args.recipe,
            batch_size=args.batch_size, image_size=args.image_size, strategy=args.strategy,
            mixed_precision=args.mixed_precision, retrain=args.retrain,
            final_epochs=args.final_epochs, overwrite=args.overwrite, seed=args.seed,
            verbose=2)
    except tuning.TrialFailed as e:
        print(f"kcnn tune: {e}", file=sys.stderr)
        return 1
    if result.best_hyperparameters is None:
        print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')} ran {result.trials_run} "
              f"trials; the chief writes the results to {result.directory}")
        return 0
    values = ", ".join(f"{k}={_format(v)}" for k, v in result.best_hyperparameters.items())
    print(f"best of {len(result.trials)} trials ({result.trials_run} run now): {values}; "
          f"{tuning.OBJECTIVE} {result.best_score:.4f}")
    print(f"wrote {tuning.BEST_FILE}, {tuning.TRIALS_FILE}, {tuning.PLOT_FILE}"
          f"{', ' + tuning.MODEL_FILE if result.model_path else ''} to {result.directory}")
    return 0


def _format(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv=None):
    """`kcnn tune ARGS` as a program of its own: `python -m kcnn.tuning`, tuning/*.py."""
    return _shared.standalone(register, "kcnn tune", argv)
