"""Multi-host data-parallel training on JAX: one process per machine.

Every process runs the same command with its own `--process-id`; process 0's
address is the coordinator. Keras shards the tf.data pipeline across the
processes and averages the gradients over every device of every process, so
all processes end with the same weights:

    # machine 0 (the coordinator, 10.0.0.1)
    KERAS_BACKEND=jax python -m kcnn.training.multihost lenet5 --data digits \\
        --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0 --out runs/mh
    # machine 1
    KERAS_BACKEND=jax python -m kcnn.training.multihost lenet5 --data digits \\
        --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1 --out runs/mh

Both commands on one machine (coordinator 127.0.0.1) give a runnable try-out.
Only process 0 writes the output folder (the others write the same
files to a scratch folder they remove: saving is collective). From Python:

    from kcnn.training import multihost

    multihost.initialize("10.0.0.1:1234", num_processes=2, process_id=0)
    multihost.train_process("resnet50", "imagenet2012", process_id=0, out_dir="runs/mh")

The command line is `kcnn.cli.multihost` (also `kcnn multihost`).

GPU and TPU processes use their accelerators' collectives; CPU-only processes
use gloo (set here), which is how the test runs it.
"""

import shutil
import tempfile

from kcnn import checks
from kcnn.training.train import train


def initialize(coordinator, *, num_processes, process_id):
    """Join the job: `keras.distribution.initialize`, with CPU collectives set.

    Call it before building a model, then train with `train_process` (or
    `kcnn.train` with `strategy="data_parallel"`).
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


def train_process(model, data, *, process_id, out_dir=None, **kwargs):
    """`kcnn.train` with `strategy="data_parallel"`, as process `process_id` of the job.

    Call `initialize` first. Every process must run the same callbacks (saving
    a checkpoint gathers the sharded arrays from all of them), so processes
    other than 0 write to a scratch folder that is removed afterwards: only
    process 0 writes `out_dir`. `kwargs` go to `kcnn.train`. Returns its History.
    """
    scratch = None
    if out_dir is not None and process_id != 0:
        out_dir = scratch = tempfile.mkdtemp(prefix=f"kcnn-process{process_id}-")
    try:
        return train(model, data, strategy="data_parallel", out_dir=out_dir, **kwargs)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    from kcnn.cli.multihost import main
    raise SystemExit(main())
