"""`kcnn multihost` (also `python -m kcnn.training.multihost`): one process of a
multi-host JAX data-parallel training job (see `kcnn.training.multihost`)."""

import json

import numpy as np

from kcnn.cli import _shared
from kcnn.training import multihost


def register(commands):
    """Add `multihost` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "multihost", help="one process of a multi-host JAX data-parallel training job",
        description="One process of a multi-host JAX data-parallel training job: run "
        "it on every machine with its own --process-id. Prints the final metrics and a "
        "weights checksum as one JSON line.")
    _shared.add_model(p, default="lenet5", help="builder name (default lenet5)")
    p.add_argument("--coordinator", required=True, help="host:port of process 0")
    p.add_argument("--num-processes", type=int, required=True)
    p.add_argument("--process-id", type=int, required=True)
    p.add_argument("--data", default="digits", help="data source (default digits)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    _shared.add_out(p, default=None, help="output folder (written by process 0)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_multihost)


def _multihost(args):
    multihost.initialize(args.coordinator, num_processes=args.num_processes,
                         process_id=args.process_id)
    history = multihost.train_process(
        args.model, args.data, process_id=args.process_id, out_dir=args.out,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        verbose=2 if args.process_id == 0 else 0)
    import jax

    final = {name: float(values[-1]) for name, values in history.history.items()}
    checksum = float(sum(np.abs(np.asarray(w, np.float64)).sum()
                         for w in history.model.get_weights()))
    print(json.dumps({"process_id": args.process_id, "process_count": jax.process_count(),
                      "devices": len(jax.devices()), "epochs": len(history.epoch),
                      "weights_checksum": checksum, **final}))
    return 0


def main(argv=None):
    """`python -m kcnn.training.multihost ARGS`; the exit code."""
    return _shared.standalone(register, "python -m kcnn.training.multihost", argv)
