"""`kcnn finetune MODEL.keras --data DIR`: a new head for new classes, then gradual unfreezing."""

import json
import os

from kcnn.cli import _shared
from kcnn.transfer import fine_tune, unfreeze


def register(commands):
    """Add `finetune` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "finetune", help="fine-tune a saved model on a new image folder",
        description="Give a trained .keras model a new classifier for the classes of "
        "--data and fine-tune it: the head first, then the backbone stage by stage, "
        "the backbone at a lower learning rate. Writes model.keras and history.json "
        "to --out.")
    p.add_argument("model", help="a .keras file (e.g. runs/train/model.keras)")
    p.add_argument("--data", required=True,
                   help="an image folder with one sub-folder per class, a "
                   "tensorflow-datasets name or 'digits'")
    p.add_argument("--epochs", type=int, default=6, help="default 6")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="the head's learning rate, cosine-decayed (default 1e-3)")
    p.add_argument("--backbone-lr", type=float, default=0.1,
                   help="the backbone's rate as a fraction of the head's (default 0.1)")
    p.add_argument("--unfreeze", default="gradual",
                   help="'gradual' (default: one more stage every --every epochs), "
                   "'all', 'none' (head only) or N (the last N stages)")
    p.add_argument("--every", type=int, default=1,
                   help="epochs between stages with --unfreeze gradual (default 1)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout before the new classifier (default 0)")
    p.add_argument("--hidden", type=int, default=None,
                   help="units of a hidden layer in the new head (default: none)")
    p.add_argument("--features", default=None,
                   help="the layer the new head reads (default: what the old classifier "
                   "read); later layers are dropped")
    p.add_argument("--validation-split", type=float, default=0.1,
                   help="fraction of --data held out for validation (default 0.1; 0: none)")
    _shared.add_out(p, default="runs/finetune", help="output folder (default runs/finetune)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace model.keras in --out if it exists")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=_finetune)


def _finetune(args):
    path = os.path.join(args.out, "model.keras")
    if os.path.exists(path) and not args.overwrite:
        raise ValueError(f"--out {args.out!r} already holds model.keras; pass "
                         f"--overwrite to replace it or choose another folder.")
    stages = int(args.unfreeze) if args.unfreeze.isdigit() else args.unfreeze
    history = fine_tune(args.model, args.data, epochs=args.epochs,
                        batch_size=args.batch_size, learning_rate=args.lr,
                        backbone=args.backbone_lr, unfreeze=stages, every=args.every,
                        dropout=args.dropout, hidden=args.hidden, features=args.features,
                        validation_split=args.validation_split or None, seed=args.seed,
                        verbose=2)
    model = history.model
    # Saved ready for further training: every layer trains, and the optimizer
    # has a group for each, so that a load (which builds it on the trainable
    # variables) finds the state it saved.
    unfreeze(model)
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    optimizer.build(model.trainable_variables)
    os.makedirs(args.out, exist_ok=True)
    model.save(path)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"epochs": len(history.epoch),
                   "history": {k: [float(v) for v in vs]
                               for k, vs in history.history.items()}}, f, indent=1)
    last = {k: vs[-1] for k, vs in history.history.items()}
    scores = "  ".join(f"{k} {v:.4f}" for k, v in last.items())
    print(f"fine-tuned {model.name} for {len(history.epoch)} epochs on "
          f"{len(model.metadata['class_names'])} classes: {scores}; wrote {path}")
    return 0
