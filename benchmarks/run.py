"""All the benchmarks on every backend, each in its own process, then the README tables.

    .venv/bin/python benchmarks/run.py --quick   # a 2-core CPU (run.json records how long)
    .venv/bin/python benchmarks/run.py --full    # the reference sizes, for a GPU machine
    .venv/bin/python benchmarks/run.py --quick --backends jax --only throughput \\
        --models resnet50 --rounds 1 --steps 1 --out /tmp/bench   # a smoke test
    .venv/bin/python benchmarks/run.py --b16     # batch 16 at 224x224, the README's table
    .venv/bin/python benchmarks/run.py --b16 --backends jax --models resnet50 mobilenet_v2

For each backend (KERAS_BACKEND set per child) it runs throughput.py,
pipeline.py, scaling.py, lrn.py and build_time.py one after the other, never two at once,
writes their JSON files to --out (lrn.py always writes to benchmarks/results,
so with another --out it runs with --no-save), keeps each child's output in
--out/logs/, records what ran in --out/run.json (run_b16.json for --b16,
which runs throughput.py alone), and finally prints the
markdown tables of render.py and writes them to --out/README.md (and, when
--out is benchmarks/results, into the project README's marked regions).
Run it on a quiet machine: other work skews every number, torch's most.
--malloc-threshold BYTES runs the children with glibc's mmap and trim thresholds
at BYTES (every result file records the allocator settings it ran with).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
BACKENDS = ("tensorflow", "jax", "torch")
BENCHMARKS = ("throughput", "pipeline", "scaling", "lrn", "build_time")
# The benchmarks a preset runs; --b16 is throughput.py's alone (the table).
PRESET_BENCHMARKS = {"quick": BENCHMARKS, "full": BENCHMARKS, "b16": ("throughput",)}
# Lines of TensorFlow's, XLA's and CUDA's start-up chatter, kept in the logs only.
NOISE = re.compile(r"^(?:[IWE]\d{4} |WARNING: All log messages|To enable the following"
                   r"|.*(?:cuda|CUDA|cuInit|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS)"
                   r"|\s+return torch\._C\._cuda_getDeviceCount)")


def commands(args, backend, benchmark):
    """The child command line of one benchmark on one backend."""
    script = os.path.join(HERE, f"{benchmark}.py")
    if benchmark == "build_time":  # fresh processes, no preset: --rounds of them
        command = [sys.executable, script, "--out", args.out]
        if args.rounds:
            command += ["--rounds", str(args.rounds)]
        return command
    if benchmark == "lrn":
        command = [sys.executable, script]
        if args.rounds:
            command += ["--rounds", str(args.rounds)]
        if os.path.abspath(args.out) != RESULTS:
            command.append("--no-save")
        return command
    command = [sys.executable, script, f"--{args.preset}", "--out", args.out]
    for option in ("rounds", "steps", "warmup"):
        if getattr(args, option) is not None:
            command += [f"--{option}", str(getattr(args, option))]
    if benchmark in ("throughput", "scaling") and args.unit_seconds is not None:
        command += ["--unit-seconds", str(args.unit_seconds)]
    if benchmark == "throughput" and args.models:
        command += ["--models", *args.models]
    return command


def child_env(backend, malloc_threshold=None):
    """The environment of a child: its backend and, with --malloc-threshold, glibc's
    mmap and trim thresholds (which glibc reads only at a process's start)."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    if malloc_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = env["MALLOC_TRIM_THRESHOLD_"] = str(malloc_threshold)
    return env


def run_child(command, env, log_path, timeout):
    """Run one child, its output to the log file and (without the chatter) the console."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n")
        child = subprocess.Popen(command, env=env, cwd=os.path.dirname(HERE), text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, child.kill) if timeout else None
        if timer:
            timer.start()
        try:
            for line in child.stdout:
                log.write(line)
                if not NOISE.match(line):
                    print(f"  {line}", end="", flush=True)
            returncode = child.wait()
        finally:
            if timer:
                timer.cancel()
            if child.poll() is None:  # interrupted: do not leave the child running
                child.kill()
    return returncode, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", dest="preset", action="store_const", const="quick",
                        help="small sizes for a 2-core CPU (the default)")
    preset.add_argument("--full", dest="preset", action="store_const", const="full",
                        help="the reference sizes, for a GPU machine")
    preset.add_argument("--b16", dest="preset", action="store_const", const="b16",
                        help="throughput.py alone at batch 16, 224x224 (the README's "
                             "every-backend table): about 6-15 minutes a backend on a "
                             "2-core CPU; writes throughput_b16_<backend>.json and "
                             "run_b16.json")
    parser.set_defaults(preset="quick")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS,
                        help="the benchmarks to run (default: all the preset has)")
    parser.add_argument("--out", default=RESULTS,
                        help=f"folder for the results (default {RESULTS})")
    parser.add_argument("--rounds", type=int, help="passed on to every benchmark")
    parser.add_argument("--steps", type=int, help="passed on (not to lrn.py)")
    parser.add_argument("--warmup", type=int, help="passed on (not to lrn.py)")
    parser.add_argument("--unit-seconds", type=float,
                        help="passed on to throughput.py and scaling.py")
    parser.add_argument("--models", nargs="+", help="passed on to throughput.py")
    parser.add_argument("--timeout", type=float,
                        help="seconds after which a child is stopped (default: none)")
    parser.add_argument("--malloc-threshold", type=int, metavar="BYTES",
                        help="run the children with glibc's MALLOC_MMAP_THRESHOLD_ and "
                             "MALLOC_TRIM_THRESHOLD_ at BYTES, so that freed activations "
                             "stay in the process instead of going back to the system and "
                             "page-faulting in again (default: glibc's own; every result "
                             "file records the setting)")
    args = parser.parse_args()
    allowed = PRESET_BENCHMARKS[args.preset]
    args.only = args.only or list(allowed)
    for benchmark in args.only:
        if benchmark not in allowed:
            parser.error(f"--only {benchmark}: the --{args.preset} preset runs only "
                         f"{', '.join(allowed)}.")
    if args.malloc_threshold is not None and args.malloc_threshold < 0:
        parser.error(f"--malloc-threshold must be a number of bytes >= 0; received "
                     f"{args.malloc_threshold}.")
    args.out = os.path.abspath(args.out)
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)

    jobs, start = [], time.perf_counter()
    for backend in args.backends:
        for benchmark in args.only:
            command = commands(args, backend, benchmark)
            tag = "" if args.preset in ("quick", "full") else f"_{args.preset}"
            log_path = os.path.join(args.out, "logs", f"{benchmark}{tag}_{backend}.log")
            print(f"== {benchmark} on {backend} (log: {log_path})", flush=True)
            returncode, seconds = run_child(
                command, child_env(backend, args.malloc_threshold), log_path, args.timeout)
            status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
            print(f"== {benchmark} on {backend}: {status} in {seconds / 60:.1f} min "
                  f"({(time.perf_counter() - start) / 60:.1f} min so far)", flush=True)
            jobs.append({"benchmark": benchmark, "backend": backend,
                         "command": command[1:], "returncode": returncode,
                         "seconds": round(seconds, 1),
                         "log": os.path.relpath(log_path, args.out)})
    record = {"preset": args.preset, "malloc_threshold": args.malloc_threshold, "jobs": jobs,
              "seconds": round(time.perf_counter() - start, 1)}
    # A --b16 run keeps its own record, so the quick run's stays in the summary.
    run_file = "run.json" if args.preset in ("quick", "full") else f"run_{args.preset}.json"
    with open(os.path.join(args.out, run_file), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"all done in {record['seconds'] / 60:.1f} min; failed: "
          + (", ".join(f"{j['benchmark']} on {j['backend']}" for j in jobs
                       if j["returncode"]) or "none"))
    subprocess.run([sys.executable, os.path.join(HERE, "render.py"), "--results", args.out],
                   check=False)
    return 1 if any(j["returncode"] for j in jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
