"""The `kcnn` command line. It runs on the backend named by KERAS_BACKEND.

    kcnn list [PATTERN]
    kcnn summary MODEL
    kcnn train MODEL --data SOURCE [--epochs N] [--recipe R] [--lr LR] [--out DIR]
    kcnn evaluate MODEL.keras --data SOURCE [--split test]
    kcnn predict MODEL.keras IMAGE... [--top-k 5]
    kcnn convert MODEL WEIGHTS.pth OUT.weights.h5 [--classes N] [--overwrite]
    kcnn export MODEL.keras PATH [--format saved_model|onnx|keras] [--overwrite]
    kcnn explain MODEL.keras IMAGE... [--out DIR] [--layer L] [--class-index K]
    kcnn tune MODEL --data SOURCE [--tuner random|bayesian|hyperband]
              [--epochs E --max-trials N | --max-epochs M --factor F] [--out DIR]
    kcnn finetune MODEL.keras --data DIR [--epochs N] [--unfreeze gradual|all|none|N] [--out DIR]
    kcnn preview [--data SOURCE] [--augment ...] [--out PNG]
    kcnn weights [PATTERN]          (the pretrained weights table)
    kcnn fetch MODEL [WEIGHTS]      (fill the weights cache ahead of time)
    kcnn demo [--epochs N] [--out DIR]   (what `make digits` runs)
    kcnn multihost [MODEL] --coordinator HOST:PORT --num-processes N --process-id I
    kcnn --version

Each command lives in its own module here (`list` and `summary` share
`models`, `weights` and `fetch` share `weights`), whose `register(commands)`
adds its sub-parser; no module outside this package imports argparse. A
command's ValueError, FileNotFoundError or TypeError ends as exit code 2 with
one line, `kcnn <command>: <message>`, on stderr.
"""

import argparse
import importlib

import kcnn  # first: orders triton, keras and TensorFlow imports
from kcnn.cli import _shared

# The modules of the commands, in the order `kcnn --help` lists them
# (`models` holds `list` and `summary`, `weights` holds `weights` and `fetch`).
COMMAND_MODULES = ("models", "train", "evaluate", "predict", "convert", "export",
                   "explain", "tune", "finetune", "preview", "weights", "demo", "multihost")


def build_parser():
    """The `kcnn` parser, with the commands of every module in `COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="kcnn", description="Classic CNNs as Keras 3 models. The backend is "
        "KERAS_BACKEND (tensorflow, jax or torch).")
    parser.add_argument("--version", action="version", version=f"kcnn {kcnn.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"kcnn.cli.{name}").register(commands)
    return parser


def main(argv=None):
    """Run `kcnn ARGS` (`argv`, default: the process's arguments); the exit code."""
    return _shared.run(build_parser(), argv)
