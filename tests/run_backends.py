"""Run the test suite once per Keras backend, each in a fresh process.

    python tests/run_backends.py [--backends tensorflow jax torch] [--workers N] [-- pytest args]

The backend is fixed when keras is imported, so each backend needs its own
process. Each backend's run is split over `--workers` pytest-xdist processes
(default: 2, or 1 on a one-core machine), a whole test file to a worker
(`--dist loadfile`), so that a module's shared models are built once. Prints
each backend's duration and its ten slowest tests, and exits non-zero if any
failed.
"""

import argparse
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS),
                        choices=BACKENDS, help="backends to run (default: all three)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="pytest-xdist workers per backend (1: no xdist; default: %(default)s)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be a positive integer, got {args.workers}")
    parallel = ["-n", str(args.workers), "--dist", "loadfile"] if args.workers > 1 else []
    # Workers share the cores: one compute thread each (torch's OpenMP threads and
    # TensorFlow's intra-op pool otherwise spin-wait for each other's cores).
    threads = ({"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
               if args.workers > 1 else {})

    results = {}
    for backend in args.backends:
        print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
        start = time.monotonic()
        env = {**threads, **os.environ, "KERAS_BACKEND": backend}
        if backend == "jax":
            # The suite's JAX time is mostly XLA compiling hundreds of small
            # programs once each; without LLVM's optimisations they compile in
            # about half the time and run a little slower (same results).
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "tests", *parallel, *extra], env=env)
        results[backend] = (code, time.monotonic() - start)
        print(f"===== {backend}: {'passed' if code == 0 else f'FAILED (exit {code})'} "
              f"in {results[backend][1]:.0f} s =====", flush=True)

    print("\nbackend durations:")
    for backend, (code, seconds) in results.items():
        print(f"  {backend:<10} {seconds:7.0f} s  {'ok' if code == 0 else 'FAILED'}")
    sys.exit(0 if all(code == 0 for code, _ in results.values()) else 1)


if __name__ == "__main__":
    main()
