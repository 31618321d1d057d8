"""Multi-host data-parallel training on JAX: one process per machine.

Every process runs the same command with its own `--process-id`; process 0's
address is the coordinator. Keras shards the tf.data pipeline across the
processes and averages the gradients over every device of every process, so
all processes end with the same weights:

    # machine 0 (the coordinator, 10.0.0.1)
    KERAS_BACKEND=jax python -m kcnn.training.multihost --coordinator 10.0.0.1:1234 \\
        --num-processes 2 --process-id 0 --model lenet5 --data digits --out runs/mh
    # machine 1
    KERAS_BACKEND=jax python -m kcnn.training.multihost --coordinator 10.0.0.1:1234 \\
        --num-processes 2 --process-id 1 --model lenet5 --data digits --out runs/mh

Both commands on one machine (coordinator 127.0.0.1) give a runnable try-out.
Only process 0 writes the output folder (the others write the same
files to a scratch folder they remove: saving is collective). From Python:

    kcnn.training.multihost.initialize("10.0.0.1:1234", num_processes=2, process_id=0)
    kcnn.train("resnet50", "imagenet2012", strategy="data_parallel", ...)

GPU and TPU processes use their accelerators' collectives; CPU-only processes
use gloo (set here), which is how the test runs it.
"""

import argparse
import json
import shutil
import sys
import tempfile

from kcnn import checks


def initialize(coordinator, *, num_processes, process_id):
    """Join the job: `keras.distribution.initialize`, with CPU collectives set.

    Call it before building a model, then train with
    `strategy="data_parallel"`.
    """
    import keras

    if keras.backend.backend() != "jax":
        raise ValueError("multi-host training needs the JAX backend (KERAS_BACKEND=jax); "
                         f"the backend is {keras.backend.backend()!r}. On TensorFlow use "
                         "strategy='mirrored' on one machine.")
    checks.positive_int("num_processes", num_processes)
    if isinstance(process_id, bool) or not isinstance(process_id, int) \
            or not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be an integer in [0, {num_processes}); "
                         f"received process_id={process_id!r}.")
    if not isinstance(coordinator, str) or ":" not in coordinator:
        raise ValueError(f"coordinator must be 'host:port' (process 0's address); "
                         f"received coordinator={coordinator!r}.")
    import jax

    # CPU devices need a collectives library (accelerators bring their own);
    # it must be chosen before JAX starts its backend, so no device query here.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(job_addresses=coordinator, num_processes=num_processes,
                                  process_id=process_id)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m kcnn.training.multihost",
        description="One process of a multi-host JAX data-parallel training job.")
    parser.add_argument("--coordinator", required=True, help="host:port of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--model", default="lenet5", help="builder name (default lenet5)")
    parser.add_argument("--data", default="digits", help="data source (default digits)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="global batch size")
    parser.add_argument("--out", default=None, help="output folder (written by process 0)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    initialize(args.coordinator, num_processes=args.num_processes,
               process_id=args.process_id)
    import kcnn

    # Every process must run the same callbacks (saving a checkpoint gathers
    # the sharded arrays from all of them), so the others write to a scratch
    # folder that is removed afterwards.
    scratch = None
    out = args.out
    if args.out is not None and args.process_id != 0:
        out = scratch = tempfile.mkdtemp(prefix=f"kcnn-process{args.process_id}-")
    try:
        history = kcnn.train(args.model, args.data, epochs=args.epochs,
                             batch_size=args.batch_size, strategy="data_parallel",
                             out_dir=out, seed=args.seed,
                             verbose=2 if args.process_id == 0 else 0)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    import numpy as np

    final = {name: float(values[-1]) for name, values in history.history.items()}
    checksum = float(sum(np.abs(np.asarray(w, np.float64)).sum()
                         for w in history.model.get_weights()))
    print(json.dumps({"process_id": args.process_id, "epochs": len(history.epoch),
                      "weights_checksum": checksum, **final}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
