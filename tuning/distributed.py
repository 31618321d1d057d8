"""Distributed tuning on one machine: a chief and N workers sharing a directory.

    python tuning/distributed.py --workers 2 -- lenet5 --data digits \
        --max-trials 8 --epochs 2 --out runs/tune/distributed

Everything after `--` is a `kcnn tune` command line (each process runs it as
`python -m kcnn.tuning`).
The chief serves keras-tuner's oracle over gRPC and hands out trials; each
worker asks it for a trial, trains it and reports back, until the budget is
spent; then the chief writes best_hyperparameters.json, trials.csv, tuning.png
and best_model.keras. Lines of output are prefixed with the process's id.

On several machines, run the same `kcnn tune` command everywhere, with the
results directory on a file system they share and in each process:

    KERASTUNER_ORACLE_IP=<the chief's address>  KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief                    (one process)
    KERASTUNER_TUNER_ID=tuner0, tuner1, ...      (the workers)

Pass --overwrite to the chief only.
"""

import argparse
import os
import socket
import subprocess
import sys
import threading


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _relay(name, stream):
    for line in stream:
        print(f"[{name}] {line}", end="", flush=True)


def main():
    argv = sys.argv[1:]
    tune_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, tune_args = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--port", type=int, default=None, help="oracle port (default: a free one)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1; received {args.workers}.")
    port = args.port or free_port()
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1",
           "KERASTUNER_ORACLE_PORT": str(port)}
    names = ["chief"] + [f"tuner{i}" for i in range(args.workers)]
    processes = {}
    for name in names:
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "kcnn.tuning", *tune_args],
            env={**env, "KERASTUNER_TUNER_ID": name}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    relays = [threading.Thread(target=_relay, args=(name, p.stdout), daemon=True)
              for name, p in processes.items()]
    for relay in relays:
        relay.start()
    codes = {name: p.wait() for name, p in processes.items()}
    for relay in relays:
        relay.join()
    failed = {name: code for name, code in codes.items() if code}
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
