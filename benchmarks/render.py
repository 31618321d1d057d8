"""The benchmark tables, in markdown, from the JSON files of a results folder.

    .venv/bin/python benchmarks/render.py [--results DIR] [--readme PATH] [--no-write | --check]

Writes every table to <results>/README.md, and the summary and the LRN table
into the project's README.md, between the markers

    <!-- benchmarks:NAME:begin ... -->
    <!-- benchmarks:NAME:end -->

(NAME: summary, lrn, b16), so that no number there is copied by hand. --check
writes nothing and exits 1 when a file differs from what it would write
(tests/test_benchmarks_readme.py checks the same). Reads throughput_<backend>.json,
throughput_b16_<backend>.json, pipeline_<backend>.json, scaling_<backend>.json,
lrn_<backend>.json, build_time_<backend>.json, run.json and run_b16.json, whichever
are there. The b16 region is always rendered, saying "Not run yet" before the
first `run.py --b16`, so the README's marker never waits for a result file.
Needs neither kcnn nor any backend.
"""

import argparse
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
README = os.path.join(os.path.dirname(HERE), "README.md")
BACKENDS = ("tensorflow", "jax", "torch")
PEERS = ("torchvision", "keras.applications")
ALEXNET_PEAK_TARGET = 0.70
# Two identical Keras models differ by up to 20% between rounds on a 2-core
# machine (benchmarks/README.md): the README's summary marks only ratios below
# this as slower.
TIE = 0.85
# Result kinds whose name has an underscore (the rest: <kind>_<backend>.json).
LONG_KINDS = ("throughput_b16", "build_time", "eval_speed")
# The README's batch-16 table: kcnn at least as fast as the peers (issue 29).
B16_TARGET = 1.0
REGION = re.compile(r"(<!-- benchmarks:(\w+):begin[^\n]*-->\n)(.*?)(<!-- benchmarks:\2:end -->)",
                    re.DOTALL)


def load(results):
    """{kind: {name suffix (the backend, with any data-format suffix): record}}."""
    found = {}
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        kind = next((k for k in LONG_KINDS if stem.startswith(k + "_")), None)
        if kind is None:
            kind, _, key = stem.partition("_")
        else:
            key = stem[len(kind) + 1:]
        with open(path) as f:
            found.setdefault(kind, {})[key or kind] = json.load(f)
    return found


def ordered(records):
    """Backend keys in the order tensorflow, jax, torch, then any others."""
    return sorted(records, key=lambda k: (k.split("_")[0] not in BACKENDS,
                                          BACKENDS.index(k.split("_")[0])
                                          if k.split("_")[0] in BACKENDS else 0, k))


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def number(x):
    if x is None:
        return "–"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def with_range(s):
    """'median (min–max)' of a spread."""
    return f"{number(s['median'])} ({number(s['min'])}–{number(s['max'])})"


def ratio_cell(r, slower_below=1.0):
    """The ratio of medians with the per-round range; bold below `slower_below`."""
    text = f"{r['of_medians']:.2f}"
    if r["of_medians"] < slower_below:
        text = f"**{text}**"
    pr = r["per_round"]
    return f"{text} ({pr['min']:.2f}–{pr['max']:.2f})"


def rounds_text(s):
    """How many rounds of how many steps, from a record's settings."""
    if s.get("steps"):
        steps = f"{s['steps']} step{'s' if s['steps'] > 1 else ''}"
    else:
        steps = f"as many steps as took about {s['unit_seconds']:g} s in the warm-up"
    return f"{s['rounds']} interleaved round{'s' if s['rounds'] > 1 else ''}, each of {steps}"


def machine_line(record):
    m = record.get("machine", {})
    load_start = m.get("load_average_at_start", [None])[0]
    return (f"{m.get('device', '?')}"
            + (f" ({m.get('cpu')}, {m.get('cpus')} cores)" if m.get("device") == "cpu"
               else "")
            + f", load average {load_start} at start, {m.get('date', '?')[:10]}"
            + "".join(f", {k}={v}" for k, v in m.get("allocator", {}).items()))


def throughput_section(records, title="Throughput: kcnn against torchvision and "
                                      "keras.applications"):
    out = [f"## {title}", ""]
    first = records[ordered(records)[0]]
    s = first["settings"]
    out.append(f"Images/s: median (min–max) of {rounds_text(s)}; batch {s['batch_size']}, "
               f"{s['image_size']}x{s['image_size']} inputs, float32, "
               f"{machine_line(first)}. Ratio: kcnn / peer, from the medians (range: "
               f"the per-round ratios); above 1 kcnn is faster, **bold** where it is "
               f"slower. A training step is forward, backward and an SGD update; GFLOP/s "
               f"count 2 FLOPs per multiply-accumulate of convolutions and dense layers "
               f"and a training image as 3 forward passes; % of peak is against the "
               f"float32 2048x2048 matmul rate measured in the same rounds (at the start: "
               + ", ".join(f"{key} {records[key]['matmul_peak']['peak_gflops']:.0f} GFLOP/s"
                           for key in ordered(records)) + ").")
    notes = {}
    for mode, title in (("train", "Training"), ("infer", "Inference")):
        if mode not in s.get("modes", ["train", "infer"]):
            continue
        rows = []
        for model in _models(records):
            for key in ordered(records):
                entry = _model(records[key], model)
                if entry is None or "kcnn" not in entry["contenders"]:
                    continue
                kcnn = entry["contenders"]["kcnn"][mode]
                row = [model, key, with_range(kcnn["images_per_s"]),
                       f"{number(kcnn['gflops'])} ({100 * kcnn['fraction_of_peak']:.0f}%)"]
                for peer in PEERS:
                    c = entry["contenders"].get(peer)
                    if c is None:
                        why = entry["missing_peers"].get(peer, "not run")
                        mark = notes.setdefault(why, len(notes) + 1)
                        row += [f"– [{mark}]", "–"]
                        continue
                    cell = with_range(c[mode]["images_per_s"])
                    if c.get("note"):
                        mark = notes.setdefault(f"{c['builder']}: {c['note']}", len(notes) + 1)
                        cell += f" [{mark}]"
                    row += [cell, ratio_cell(entry["ratios"][peer][mode])]
                rows.append(row)
        out += ["", f"### {title}", "",
                table(["model", "backend", "kcnn img/s", "kcnn GFLOP/s (% of peak)",
                       "torchvision eager img/s", "kcnn / torchvision",
                       "keras.applications img/s", "kcnn / keras.applications"], rows)]
    if notes:
        out += ["", "Peers:"]
        for text, mark in sorted(notes.items(), key=lambda item: item[1]):
            out.append(f"{mark}. {text}")
    return out


def _models(records):
    names = []
    for key in ordered(records):
        for entry in records[key]["models"]:
            if entry["model"] not in names:
                names.append(entry["model"])
    return names


def _model(record, name):
    return next((m for m in record["models"] if m["model"] == name), None)


def fastest(throughput, model, mode):
    """(backend key, entry) of the backend where kcnn runs `model` fastest in `mode`,
    or None where no backend ran it."""
    entries = {key: _model(throughput[key], model) for key in ordered(throughput)}
    entries = {k: e for k, e in entries.items()
               if e and "kcnn" in e["contenders"] and mode in e["contenders"]["kcnn"]}
    if not entries:
        return None
    best = max(entries, key=lambda k: entries[k]["contenders"]["kcnn"][mode]
               ["images_per_s"]["median"])
    return best, entries[best]


def targets_section(throughput, pipeline):
    """The issue's targets: best backend against the peers, AlexNet's share of the
    peak, the pipeline's margin."""
    out = ["## Targets", ""]
    rows = []
    for model in _models(throughput):
        for mode in ("train", "infer"):
            found = fastest(throughput, model, mode)
            if found is None:
                continue
            best, entry = found
            cells = [model, mode, best]
            met = True
            for peer in PEERS:
                r = entry["ratios"].get(peer, {}).get(mode)
                cells.append(ratio_cell(r) if r else "–")
                met = met and (r is None or r["of_medians"] >= 1)
            cells.append("yes" if met else "no")
            rows.append(cells)
    if rows:
        out += ["kcnn on its fastest backend against the peers measured in that "
                "backend's process (target: at least 1).", "",
                table(["model", "mode", "fastest backend", "kcnn / torchvision",
                       "kcnn / keras.applications", "met"], rows)]
    for line in (alexnet_peak_line(throughput), pipeline_line(pipeline)):
        if line:
            out += ["", line]
    return out


def alexnet_peak_line(throughput):
    """AlexNet training's share of the matmul peak on each backend, or None."""
    alexnet = [(key, _model(throughput[key], "alexnet")) for key in ordered(throughput)]
    alexnet = [(k, e) for k, e in alexnet if e and "train" in e["contenders"]["kcnn"]]
    if not alexnet:
        return None
    parts = []
    for key, e in alexnet:
        share = e["contenders"]["kcnn"]["train"]["fraction_of_peak"]
        tv = e["contenders"].get("torchvision", {}).get("train")
        parts.append(f"{key} {100 * share:.0f}%"
                     + (f" (torchvision {100 * tv['fraction_of_peak']:.0f}%)" if tv else ""))
    return (f"AlexNet training, share of the matmul peak (target "
            f"{100 * ALEXNET_PEAK_TARGET:.0f}%): " + ", ".join(parts) + ".")


def pipeline_line(pipeline):
    """The input pipeline's rate over AlexNet training's on each backend, or None."""
    if not pipeline:
        return None
    parts = []
    for key in ordered(pipeline):
        for name, r in pipeline[key]["pipeline_over_training"].items():
            parts.append(f"{key}, {name.removeprefix('pipeline, ')}: "
                         f"{r['of_medians']:.1f}x")
    target = next(iter(pipeline.values()))["target_ratio"]
    return f"Input pipeline / AlexNet training (target {target:g}x): " + "; ".join(parts) + "."


def pipeline_section(records):
    first = records[ordered(records)[0]]
    s = first["settings"]
    out = ["## Input pipeline against AlexNet training", "",
           f"Images/s: median (min–max) of {s['rounds']} interleaved rounds; batch "
           f"{s['batch_size']}, 224x224 crops, the alexnet2012 recipe's augmentation "
           f"(random crop, flip, PCA lighting), {machine_line(first)}. The pipeline is "
           f"tf.data on every backend; the training rate is the backend's. Pipeline / "
           f"training above {first['target_ratio']:g} meets the target; \"fed\" is "
           f"training on the JPEG pipeline's batches, input and compute sharing the "
           f"cores, against training on a batch in memory.", ""]
    rows = []
    for key in ordered(records):
        r = records[key]
        rates = r["images_per_s"]
        cells = [key]
        cells += [with_range(rates[name]) for name in rates]
        cells += [f"{x['of_medians']:.1f}x" for x in r["pipeline_over_training"].values()]
        cells.append(f"{r['fed_over_in_memory']['of_medians']:.2f}")
        rows.append(cells)
    names = list(first["images_per_s"])
    header = (["backend"] + [n.replace("AlexNet training, batch in memory",
                                       "AlexNet training") for n in names]
              + [f"{n.removeprefix('pipeline, ')} / training"
                 for n in first["pipeline_over_training"]] + ["fed / in memory"])
    out.append(table(header, rows))
    return out


def scaling_section(records):
    first = records[ordered(records)[0]]
    s = first["settings"]
    size = "x".join(str(d) for d in first["input_shape"] if d != 3)
    out = [f"## Step time and memory against batch size ({s['model']}, {size})", "",
           f"Training step time in ms: median (min–max) of {rounds_text(s)}; and images/s; "
           f"{machine_line(first)}.", ""]
    keys = ordered(records)
    batches = sorted({st["batch_size"] for k in keys for st in records[k]["steps"]})
    rows = []
    for b in batches:
        row = [b]
        for k in keys:
            st = next((x for x in records[k]["steps"] if x["batch_size"] == b), None)
            row.append(f"{with_range(st['step_ms'])}, {number(st['images_per_s']['median'])}"
                       if st else "–")
        rows.append(row)
    out.append(table(["batch"] + [f"{k} ms, img/s" for k in keys], rows))
    if any(records[k]["memory"] for k in keys):
        out += ["", "Resident memory in MB of a process that builds the model, then runs "
                    "inference steps, then training steps: after building (framework and "
                    "weights), and the peak during inference / during training. On a GPU, "
                    "the device's peak follows.", ""]
        batches = sorted({m["batch_size"] for k in keys for m in records[k]["memory"]})
        rows = []
        for b in batches:
            row = [b]
            for k in keys:
                m = next((x for x in records[k]["memory"] if x["batch_size"] == b), None)
                if m is None:
                    row.append("–")
                elif "error" in m:
                    row.append("failed")
                else:
                    cell = (f"{m['rss_after_build_mb']:.0f} / {m['peak_rss_inference_mb']:.0f}"
                            f" / {m['peak_rss_training_mb']:.0f}")
                    if "device_peak_after_training_mb" in m:
                        cell += f" (device {m['device_peak_after_training_mb']:.0f})"
                    row.append(cell)
            rows.append(row)
        out.append(table(["batch"] + [f"{k} built / inference / training" for k in keys],
                         rows))
    return out


def lrn_section(records):
    return ["## Local response normalization", "",
            "Forward + backward of kcnn's LRN layer on (128, 27, 27, 96) float32 against the "
            "reference op (benchmarks/lrn.py); the ratio of the slower layout of the layer.", "",
            lrn_table(records)]


def lrn_table(records):
    rows = [[key, r["reference"], f"{r['layer_ratio']:.2f}", f"{r['target_ratio']:g}",
             "yes" if r["within_target"] else "no"] for key, r in
            ((k, records[k]) for k in ordered(records))]
    return table(["backend", "reference", "kcnn layer / reference", "target", "met"], rows)


def b16_table(records):
    """The issue's table: a row per model, kcnn / peer in training and inference on
    every backend, side by side; "not run" where a backend has no file yet."""
    keys = list(BACKENDS) + [k for k in ordered(records) if k not in BACKENDS]
    header = ["model"] + [f"{key} / {peer} train / infer" for peer in PEERS for key in keys]
    rows = []
    models = _models(records) if records else []
    for model in models:
        row = [model]
        for peer in PEERS:
            for key in keys:
                entry = _model(records[key], model) if key in records else None
                if entry is None:
                    row.append("not run")
                    continue
                ratios = entry["ratios"].get(peer)
                if ratios is None:
                    row.append("–")
                    continue
                row.append(" / ".join(b16_cell(ratios.get(mode))
                                      for mode in ("train", "infer")))
        rows.append(row)
    return table(header, rows)


def b16_cell(r):
    if r is None:
        return "–"
    text = f"{r['of_medians']:.2f}"
    return f"**{text}**" if r["of_medians"] < B16_TARGET else text


def b16_lines(records):
    """The README's batch-16 region: how it was measured and the table, or what to
    run while no backend has a result."""
    command = "`benchmarks/run.py --b16`"
    if not records:
        return [f"Not run yet: {command} writes "
                f"`benchmarks/results/throughput_b16_<backend>.json` for each backend, "
                f"and this table."]
    first = records[ordered(records)[0]]
    s = first["settings"]
    missing = [b for b in BACKENDS if b not in records]
    out = [f"kcnn / peer, images/s (median of {rounds_text(s)}), batch {s['batch_size']}, "
           f"{s['image_size']}x{s['image_size']}, float32, the peers in the same process; "
           f"{machine_line(first)}; **bold** below {B16_TARGET:g}, \"–\" where "
           f"keras.applications has no such model. Produced by {command}; spreads and "
           f"images/s in benchmarks/results/README.md."
           + (f" Not run yet on {', '.join(missing)}." if missing else ""), "",
           b16_table(records)]
    return out


def build_time_section(records):
    first = records[ordered(records)[0]]
    out = ["## Build time: a fresh process, then ResNet-50", "",
           f"Seconds, median (min–max) of {first['processes']} fresh processes per "
           f"contender, alternating kcnn and keras.applications: importing the package "
           f"(kcnn, or keras) and building `{first['builders']['kcnn']}` against "
           f"`{first['builders']['keras.applications']}`, then the first forward call "
           f"(`predict_on_batch` of {first['batch_size']} image(s) of "
           f"{'x'.join(str(d) for d in first['input_shape'])}: JAX compiles here). "
           f"{machine_line(first)}. Ratio kcnn / keras.applications: below 1 kcnn is "
           f"faster.", ""]
    rows = []
    for key in ordered(records):
        r = records[key]
        row = [key]
        for phase in ("import", "build", "first_call"):
            for contender in ("kcnn", "keras.applications"):
                row.append(with_range(r["seconds"][contender][phase]))
        for phase in ("import_and_build", "first_call"):
            row.append(f"{r['ratios'][phase]:.2f}")
        rows.append(row)
    out.append(table(["backend", "import kcnn", "import keras", "build kcnn",
                      "build keras.applications", "first call kcnn",
                      "first call keras.applications", "import + build kcnn / k.a",
                      "first call kcnn / k.a"], rows))
    return out


def run_section(run):
    failed = [j for j in run["jobs"] if j["returncode"]]
    line = (f"Produced by `benchmarks/run.py --{run['preset']}` in "
            f"{run['seconds'] / 60:.0f} minutes.")
    if failed:
        line += " Failed: " + ", ".join(f"{j['benchmark']} on {j['backend']} (see "
                                        f"{j['log']})" for j in failed) + "."
    return [line]


def render(results):
    """<results>/README.md: every table."""
    found = load(results)
    sections = []
    if "run" in found.get("run", {}):
        sections.append(run_section(found["run"]["run"]))
    if "throughput" in found:
        sections.append(targets_section(found["throughput"], found.get("pipeline")))
        sections.append(throughput_section(found["throughput"]))
    b16 = found.get("throughput_b16", {})
    sections.append(["## Batch 16, 224x224, every backend", ""] + b16_lines(b16))
    if b16:
        if "b16" in found.get("run", {}):
            sections[-1] += ["", run_section(found["run"]["b16"])[0]]
        sections.append(throughput_section(
            b16, "Batch 16, 224x224: images/s against torchvision and keras.applications"))
    if "build_time" in found:
        sections.append(build_time_section(found["build_time"]))
    if "pipeline" in found:
        sections.append(pipeline_section(found["pipeline"]))
    if "scaling" in found:
        sections.append(scaling_section(found["scaling"]))
    if "lrn" in found:
        sections.append(lrn_section(found["lrn"]))
    if not found:
        raise ValueError(f"--results {results!r} holds no benchmark JSON files; run "
                         f"benchmarks/run.py first.")
    return "# Benchmarks\n\n" + "\n\n".join("\n".join(s) for s in sections) + "\n"


def readme_regions(results):
    """{region name: markdown} for the project's README."""
    found = load(results)
    regions = {"b16": "\n".join(b16_lines(found.get("throughput_b16", {})))}
    if "throughput" in found:
        regions["summary"] = "\n".join(summary(found))
    if "lrn" in found:
        regions["lrn"] = lrn_table(found["lrn"])
    return regions


def summary(found):
    """The quick run, kcnn on its fastest backend against the peers, each backend's
    range of ratios, AlexNet's share of the peak and the pipeline's margin."""
    throughput = found["throughput"]
    first = throughput[ordered(throughput)[0]]
    s = first["settings"]
    out = [f"Batch {s['batch_size']}, {s['image_size']}x{s['image_size']} inputs, "
           f"{rounds_text(s)}; {machine_line(first)}."
           + (" " + run_section(found["run"]["run"])[0]
              if "run" in found.get("run", {}) else ""), ""]
    rows = []
    for model in _models(throughput):
        best = {mode: fastest(throughput, model, mode) for mode in ("train", "infer")}
        best = {mode: hit for mode, hit in best.items() if hit}
        backends = list(dict.fromkeys(key for key, _ in best.values()))
        cells = [model, ", ".join(backends)]
        for peer in PEERS:
            for mode in ("train", "infer"):
                r = best[mode][1]["ratios"].get(peer, {}).get(mode) if mode in best else None
                cells.append(ratio_cell(r, slower_below=TIE) if r else "–")
        rows.append(cells)
    out += ["kcnn / peer, images/s, on kcnn's fastest backend: median (range of the "
            f"rounds), bold below {TIE:g}.", "",
            table(["model", "fastest backend", "train / torchvision", "infer / torchvision",
                   "train / keras.applications", "infer / keras.applications"], rows),
            "", "kcnn / peer on each backend, lowest and highest median over the models, "
                "training and inference:", "",
            table(["backend"] + [f"kcnn / {peer}" for peer in PEERS],
                  [[key] + [ratio_span(throughput[key], peer) for peer in PEERS]
                   for key in ordered(throughput)])]
    for line in (alexnet_peak_line(throughput), pipeline_line(found.get("pipeline"))):
        if line:
            out += ["", line]
    return out


def ratio_span(record, peer):
    """'lowest–highest' of kcnn / peer over a backend's models and modes."""
    ratios = [r["of_medians"] for entry in record["models"]
              for r in entry["ratios"].get(peer, {}).values()]
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "–"


def fill(text, regions, path):
    """`text` with each marked region's body replaced by regions[name]."""
    seen = set()

    def body(match):
        name = match.group(2)
        if name not in regions:
            raise ValueError(f"{path} has a region {name!r} that the results do not "
                             f"render; known: {sorted(regions)}.")
        if name in seen:
            raise ValueError(f"{path} has the region {name!r} twice.")
        seen.add(name)
        # Blank lines around the body: an HTML comment line next to a table can
        # keep some markdown renderers from seeing the table.
        return match.group(1) + "\n" + regions[name] + "\n\n" + match.group(4)

    text = REGION.sub(body, text)
    missing = sorted(set(regions) - seen)
    if missing:
        raise ValueError(f"{path} lacks the regions {missing}: add "
                         f"<!-- benchmarks:NAME:begin --> and <!-- benchmarks:NAME:end -->.")
    return text


def outputs(results, readme):
    """{path: the text render.py writes there}."""
    out = {os.path.join(results, "README.md"): render(results)}
    if readme is not None:
        with open(readme) as f:
            out[readme] = fill(f.read(), readme_regions(results), readme)
    return out


def stale(results, readme):
    """The paths whose text differs from what render.py would write."""
    paths = []
    for path, text in outputs(results, readme).items():
        try:
            with open(path) as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--readme",
                        help="the README with marked regions to fill (default: the "
                             "project's README.md when --results is benchmarks/results, "
                             "none otherwise, so a trial run elsewhere leaves it alone)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-write", action="store_true",
                      help="print the tables of <results>/README.md, write nothing")
    mode.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 if a file is not what render.py writes")
    args = parser.parse_args()
    readme = args.readme
    if readme is None and os.path.abspath(args.results) == RESULTS:
        readme = README
    if args.check:
        paths = stale(args.results, readme)
        for path in paths:
            print(f"stale: {path} (run benchmarks/render.py)", file=sys.stderr)
        return 1 if paths else 0
    if args.no_write:
        print(render(args.results), end="")
        return 0
    texts = outputs(args.results, readme)
    print(texts[os.path.join(args.results, "README.md")], end="")
    for path, text in texts.items():
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
