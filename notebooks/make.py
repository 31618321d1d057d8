"""Write the notebooks from their sources and run them, keeping the outputs.

    python notebooks/make.py                 # every notebook, full run (as committed)
    python notebooks/make.py 01 02           # some of them
    KCNN_NOTEBOOK_SMALL=1 python notebooks/make.py --check   # quick run, nothing written

Each notebook's source is a module `notebooks/src/NN_name.py`: cells separated
by lines `# %%` (code) or `# %% [markdown]` (markdown, each line starting with
`# `). The full run executes in the notebook's directory with the backend in
KERAS_BACKEND (TensorFlow when unset: the committed notebooks are TensorFlow
runs) and writes `notebooks/NN_name.ipynb` with its outputs; `--check` executes
a copy and writes nothing (the test does that on each backend, with
`KCNN_NOTEBOOK_SMALL=1` for a small-data version of each lesson).
"""

import argparse
import os
import re
import sys
import time

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(HERE, "src")


def sources(selected=()):
    names = sorted(f[:-3] for f in os.listdir(SOURCES)
                   if f.endswith(".py") and f[:2].isdigit())
    if selected:
        names = [n for n in names if any(n.startswith(s) for s in selected)]
    return names


def read_cells(name):
    """The notebook's cells from its `# %%`-delimited source."""
    text = open(os.path.join(SOURCES, name + ".py"), encoding="utf-8").read()
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif kind == "code" and body:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(name):
    notebook = nbformat.v4.new_notebook(cells=read_cells(name))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


# Native libraries' start-up chatter on stderr (TensorFlow, absl, XLA), which
# says nothing about the lesson.
_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |"
                    r"To enable the following instructions|\s*$)")


def execute(notebook, timeout=1200):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": HERE}})
    client.execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not _is_noise(o)]
    return notebook


def _is_noise(output):
    return (output.output_type == "stream" and output.name == "stderr"
            and all(_NOISE.match(line) for line in output.text.splitlines()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="name prefixes such as 01 (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="execute without writing the .ipynb files")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # read by each notebook's kernel
    for name in sources(args.notebooks):
        start = time.perf_counter()
        notebook = execute(build(name))
        seconds = time.perf_counter() - start
        if not args.check:
            nbformat.write(notebook, os.path.join(HERE, name + ".ipynb"))
        print(f"{name}: ran in {seconds:.0f} s" + ("" if args.check else ", written"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
