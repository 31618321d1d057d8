"""What the benchmark scripts share: interleaved rounds, spreads, FLOPs, the
matrix-multiply peak, the machine record and the JSON files.

Imported by the scripts next to it (run as `python benchmarks/<script>.py`,
which puts this folder on `sys.path`) after `import kcnn`, which orders triton,
keras and TensorFlow (see kcnn/__init__.py).
"""

import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings

import keras
import numpy as np

from kcnn.exporting.litert import usable_cpus

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# Other work on the machine skews every number (torch's OpenMP threads most of
# all): the record keeps the load when the script started and when it ended.
_LOAD_AT_START = [round(x, 2) for x in os.getloadavg()]
# What tunes the C allocator, read once at start-up by glibc's malloc (mallopt(3),
# "ENVIRONMENT"; an LD_PRELOAD'ed jemalloc or tcmalloc replaces it): torch's eager
# step times depend on it (benchmarks/README.md), so a result records which were set.
ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                 "MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "LD_PRELOAD")


def add_common_arguments(parser, extra_presets=None):
    """--quick / --full (the presets; extra_presets: {name: help} of the script's
    own), --rounds, --warmup, --steps, --threads, --out, --no-save."""
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", dest="preset", action="store_const", const="quick",
                        help="small sizes for a 2-core CPU (the default)")
    preset.add_argument("--full", dest="preset", action="store_const", const="full",
                        help="the reference sizes, for a GPU machine")
    for name, text in (extra_presets or {}).items():
        preset.add_argument(f"--{name}", dest="preset", action="store_const", const=name,
                            help=text)
    parser.set_defaults(preset="quick")
    parser.add_argument("--threads", type=int,
                        help="compute threads of torch and of TensorFlow's intra-op pool "
                             f"(default: the CPUs this process may use, {usable_cpus()})")
    parser.add_argument("--rounds", type=int, help="timed rounds (default: the preset's)")
    parser.add_argument("--warmup", type=int,
                        help="untimed steps per contender and mode before timing, at least one "
                             "(default: the preset's)")
    parser.add_argument("--steps", type=int,
                        help="steps per contender in each round (default: the preset's, or "
                             "as many as take --unit-seconds where the preset has that)")
    parser.add_argument("--out", default=RESULTS,
                        help=f"folder for the JSON file (default {RESULTS})")
    parser.add_argument("--no-save", action="store_true", help="print only")


def settings(args, presets):
    """The preset named by args.preset, with every argument given on the command line on top."""
    chosen = dict(presets[args.preset])
    for key in chosen:
        value = getattr(args, key, None)
        if value is not None:
            chosen[key] = value
    for key in ("rounds", "steps", "batch_size"):
        if chosen.get(key) is not None and chosen[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be a positive integer; "
                             f"received {chosen[key]!r}.")
    if "warmup" in chosen and chosen["warmup"] < 0:
        raise ValueError(f"--warmup must be >= 0; received {chosen['warmup']!r}.")
    chosen["preset"] = args.preset
    return chosen




def pin_threads(threads=None):
    """Give torch and the backend the same number of compute threads; return it.

    Left alone, torch takes one thread per physical core it detects and
    TensorFlow one per logical CPU, which differ on some machines; pinning both
    keeps a ratio from measuring thread counts. TensorFlow's pool must be sized
    before its runtime starts (before the first op), so call this first. JAX's
    CPU client has no thread setting after import: it uses every CPU, which is
    the default here too.
    """
    threads = threads or usable_cpus()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
    try:
        import torch
    except ImportError:
        return threads
    torch.set_num_threads(threads)
    return threads


def warm_up(step, warmup, steps=None, unit_seconds=None, max_steps=100):
    """Run `step` `warmup` times (at least once), and choose the steps of a round.

    Returns (seconds of the first call, which includes JAX's compilation and
    TensorFlow's tracing; steps per round): `steps` if given, else as many as
    take about `unit_seconds`, from one more timed call.
    """
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    if steps is not None:
        return first, steps
    start = time.perf_counter()
    step()
    one = time.perf_counter() - start
    return first, max(1, min(max_steps, round(unit_seconds / one)))


# Seconds the machine idles before each timed run of `interleaved`. A library's
# thread pool keeps spinning on the CPUs for a while after its last call
# (OpenBLAS's behind NumPy's matmul, OpenMP's): on a 2-core machine that time is
# taken from whatever runs next. Here kcnn's AlexNet training step on torch took
# 1.15-1.2x its time when it ran right after NumPy's matmul peak, and its own time
# after a pause of 0.2 s (0.05 s was too short); torchvision's, run later, was
# unaffected. 0.25 s a run adds seconds, not minutes, to a benchmark.
SETTLE_SECONDS = 0.25


def round_order(names, round_):
    """The order of the contenders in round `round_` of `interleaved`: each round
    starts with the next contender, and every other round goes the other way
    round, so that no contender always follows the same neighbour."""
    start, step = round_ % len(names), (1 if round_ % 2 == 0 else -1)
    return [names[(start + step * k) % len(names)] for k in range(len(names))]


def interleaved(runs, rounds, settle=SETTLE_SECONDS):
    """Seconds of each zero-argument run, round by round (`round_order`), each run
    after `settle` seconds of idling (`SETTLE_SECONDS`).

    No contender always runs first or right after the same neighbour, and a slow
    spell of the machine hits all of them alike.
    """
    names = list(runs)
    times = {name: [] for name in names}
    for round_ in range(rounds):
        for name in round_order(names, round_):
            time.sleep(settle)
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def spread(values):
    """Median, quartiles, minimum and maximum of per-round values, and the values."""
    values = [float(v) for v in values]
    ordered = sorted(values)
    if len(ordered) > 1:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {"median": significant(statistics.median(ordered)),
            "q1": significant(q1), "q3": significant(q3),
            "min": significant(ordered[0]), "max": significant(ordered[-1]),
            "rounds": [significant(v) for v in values]}


def ratio(numerators, denominators):
    """kcnn / peer: the ratio of the medians, and the spread of the per-round ratios
    (rounds are paired: both ran within the same round)."""
    per_round = [a / b for a, b in zip(numerators, denominators)]
    of_medians = statistics.median(numerators) / statistics.median(denominators)
    return {"of_medians": significant(of_medians), "per_round": spread(per_round)}


def significant(x):
    """x to 4 significant digits, for the JSON files."""
    return float(f"{x:.4g}")


# -- FLOPs ---------------------------------------------------------------------

def forward_flops(model):
    """FLOPs of one image's forward pass and where the count comes from.

    2 x the multiply-accumulates of the convolutions and dense layers, the
    convention of the papers (torchvision's "GFLOPS" are GMACs), from
    `kcnn.inspect.profile`; (None, why) where that cannot be imported (in
    this kcnn, `kcnn.inspect` imports TensorFlow through `kcnn.data`, which the
    GPU machines of gpu.sh lack).
    """
    try:
        from kcnn.inspect import profile
    except ImportError as error:
        return None, f"not counted: kcnn.inspect failed to import ({error})"
    return int(profile(model).flops), "kcnn.inspect.profile"


# -- The matrix-multiply peak --------------------------------------------------

class Matmul:
    """The float32 matrix-multiply rate: a (size x size) @ (size x size) product,
    `repeats` times per call, with NumPy, torch and the Keras backend's own
    library (TensorFlow or JAX), on the backend's device.

    `runs` maps each library to a zero-argument call; `gflop` is the work of one;
    `library` is the fastest, once `measure` has run.
    """

    def __init__(self, size=2048, repeats=3):
        self.size, self.repeats = size, repeats
        self.gflop = 2 * size ** 3 * repeats / 1e9
        self.library = None
        rng = np.random.default_rng(0)
        a = rng.standard_normal((size, size), dtype=np.float32)
        b = rng.standard_normal((size, size), dtype=np.float32)
        self.runs = {"numpy": lambda: [a @ b for _ in range(repeats)]}
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            ta, tb = tf.constant(a), tf.constant(b)
            self.runs["tensorflow"] = lambda: [tf.linalg.matmul(ta, tb)[0, 0].numpy()
                                               for _ in range(repeats)]
        elif backend == "jax":
            import jax

            product = jax.jit(jax.numpy.matmul)
            ja, jb = jax.device_put(a), jax.device_put(b)
            self.runs["jax"] = lambda: [product(ja, jb).block_until_ready()
                                        for _ in range(repeats)]
        try:
            import torch
        except ImportError:
            return
        device = torch_device()
        xa, xb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)

        def torch_run():
            for _ in range(repeats):
                torch.mm(xa, xb)
            torch_sync(device)

        self.runs["torch"] = torch_run

    def measure(self, rounds=3):
        """GFLOP/s of every library, interleaved; the peak is the best median."""
        for run in self.runs.values():
            run()
        times = interleaved(self.runs, rounds)
        gflops = {name: spread([self.gflop / t for t in ts]) for name, ts in times.items()}
        best = max(gflops, key=lambda name: gflops[name]["median"])
        self.library = best
        return {"size": self.size, "repeats": self.repeats, "rounds": rounds,
                "gflops": gflops, "peak_gflops": gflops[best]["median"], "peak_from": best}


# -- Devices -------------------------------------------------------------------

def torch_device():
    import torch

    with warnings.catch_warnings():  # a CUDA build on a machine without a GPU warns
        warnings.simplefilter("ignore", UserWarning)
        return "cuda" if torch.cuda.is_available() else "cpu"


def torch_sync(device):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def device_name():
    """The device the Keras backend computes on: "cpu" or the accelerator's name."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get(
            "device_name", "gpu") if gpus else "cpu"
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else device.device_kind
    import torch

    return torch.cuda.get_device_name(0) if torch_device() == "cuda" else "cpu"


def device_peak_memory():
    """Peak bytes allocated on the accelerator so far, or None on a CPU."""
    if device_name() == "cpu":
        return None
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    if backend == "jax":
        import jax

        return jax.devices()[0].memory_stats().get("peak_bytes_in_use")
    import torch

    return torch.cuda.max_memory_allocated()


# -- The record ----------------------------------------------------------------

def machine():
    """Where and with what a result was measured."""
    info = {
        "backend": keras.backend.backend(),
        "image_data_format": keras.config.image_data_format(),
        "device": device_name(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "threads": _threads(),
        "load_average_at_start": _LOAD_AT_START,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        # {}: the C library's defaults.
        "allocator": {k: os.environ[k] for k in ALLOCATOR_ENV if os.environ.get(k)},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    for module in ("keras", "tensorflow", "jax", "torch", "torchvision", "numpy"):
        if module in sys.modules:
            info[module] = sys.modules[module].__version__
    return info


def _threads():
    """torch's and TensorFlow's compute threads, where loaded."""
    threads = {}
    if "torch" in sys.modules:
        threads["torch"] = sys.modules["torch"].get_num_threads()
    if "tensorflow" in sys.modules and keras.backend.backend() == "tensorflow":
        threads["tensorflow_intra_op"] = (
            sys.modules["tensorflow"].config.threading.get_intra_op_parallelism_threads())
    return threads


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def save(record, out, name, no_save=False):
    """Write record (with the machine record added) to out/name.json; return the path."""
    record["machine"] = machine()
    if no_save:
        return None
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")
    return path
