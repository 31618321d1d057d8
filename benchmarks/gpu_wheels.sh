#!/usr/bin/env bash
# The wheels benchmarks/gpu.sh installs on a GPU machine without network:
# Keras and the small packages it imports that such a machine may lack, built
# for Python 3.12 on x86-64 Linux. Run here (a machine with the package index):
#
#     benchmarks/gpu_wheels.sh [DIR]        # default benchmarks/wheels
#
# Keras 3.15's imports on the JAX and torch backends, checked by blocking each
# module in turn: h5py, rich (with markdown-it-py, mdurl, pygments), absl-py,
# ml-dtypes, packaging, numpy, and a tree library on JAX: optree or dm-tree
# (without either, `import keras` fails there; the torch backend uses
# torch.utils._pytree instead). namex is declared but not imported. gpu.sh
# installs only those whose module the machine cannot import.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-$HERE/wheels}
PY=${PYTHON:-$(dirname "$HERE")/.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$DIR"
"$PY" -m pip download --no-deps --python-version 3.12 --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    -d "$DIR" \
    "keras==3.15.1" optree h5py ml-dtypes absl-py rich markdown-it-py mdurl pygments \
    packaging namex
ls -l "$DIR"
