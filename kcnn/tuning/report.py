"""What a search leaves behind: the trials table, the plot, the best values and model.

Next to keras-tuner's own files (`keras_tuner/`) the search directory holds
`search.json` (what was searched, written by `kcnn.tuning.search`),
`best_hyperparameters.json`, `trials.csv` (one row per trial), `tuning.png`
(validation accuracy against each tuned number) and `best_model.keras` (the
best values retrained from scratch). A search whose trials all failed raises
`TrialFailed` with a failed trial's own error instead.
"""

import contextlib
import csv
import dataclasses
import json
import os
import warnings

import keras
import keras_tuner as kt

from kcnn.tuning.hypermodel import OBJECTIVE

SEARCH_FILE = "search.json"
BEST_FILE = "best_hyperparameters.json"
TRIALS_FILE = "trials.csv"
PLOT_FILE = "tuning.png"
MODEL_FILE = "best_model.keras"
OUTPUTS = (SEARCH_FILE, BEST_FILE, TRIALS_FILE, PLOT_FILE, MODEL_FILE)
_FAILED = (kt.engine.trial.TrialStatus.FAILED, kt.engine.trial.TrialStatus.INVALID)


class TrialFailed(RuntimeError):
    """A search whose trials failed; the message carries a trial's own error."""


@dataclasses.dataclass
class TuneResult:
    """What a search found and wrote.

    Attributes:
        directory: the search directory.
        best_hyperparameters: the best trial's values (None on a worker).
        best_score: its validation top-1 accuracy (None on a worker).
        trials: the rows of trials.csv (empty on a worker).
        trials_run: trials this process ran (0 on a chief; the rest ran before
            or elsewhere).
        model_path: best_model.keras, or None (not retrained, or a worker).
        tuner: the keras-tuner tuner.
    """

    directory: str
    best_hyperparameters: dict | None
    best_score: float | None
    trials: list
    trials_run: int
    model_path: str | None
    tuner: object


def is_failed(trial):
    return trial.status in _FAILED


def last_line(message):
    """The last non-blank line of a trial's message: the error, after its traceback."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no error recorded)"


def failure_message(search):
    """The `TrialFailed` message: every failure in a line, the last one in full."""
    failed = [t for t in search.oracle.trials.values() if is_failed(t)]
    trial = failed[-1]
    others = "".join(f"\n  trial {t.trial_id}: {last_line(t.message)}" for t in failed[:-1])
    return (f"{len(failed)} of {len(search.oracle.trials)} trials failed and none "
            f"completed.{' Other failures:' + others if others else ''}\n"
            f"Trial {trial.trial_id} failed with {last_line(trial.message)}\n\n"
            f"{(trial.message or '').strip()}")


def finish(search, hypermodel, directory, train_source, val_source, *, retrain,
           final_epochs, verbose):
    """Write the outputs of a finished search (on the chief) and return its `TuneResult`."""
    trials = sorted(search.oracle.trials.values(), key=lambda t: t.trial_id)
    completed = [t for t in trials if t.status == kt.engine.trial.TrialStatus.COMPLETED]
    failed = [t for t in trials if is_failed(t)]
    if not completed:
        raise TrialFailed(failure_message(search))
    for trial in failed:
        warnings.warn(f"trial {trial.trial_id} failed: {last_line(trial.message)} "
                      f"(the traceback is in {search.get_trial_dir(trial.trial_id)}/"
                      "trial.json)", stacklevel=3)
    rows = _rows(trials)
    _write_csv(rows, os.path.join(directory, TRIALS_FILE))
    _plot(rows, hypermodel.space, os.path.join(directory, PLOT_FILE))

    best = search.oracle.get_best_trials(1)[0]
    best_values = {k: v for k, v in best.hyperparameters.values.items()
                   if not k.startswith("tuner/")}
    best_path = os.path.join(directory, BEST_FILE)
    record = {"model": hypermodel.name, "objective": OBJECTIVE, "score": best.score,
              "trial_id": best.trial_id, "hyperparameters": best_values,
              "trials": {"total": len(trials), "completed": len(completed),
                         "failed": len(failed)}}
    # best_model.keras is retrained only when the best trial (or final_epochs)
    # changed since it was written: a finished search run again costs nothing.
    model_path = os.path.join(directory, MODEL_FILE)
    retrained = {"trial_id": best.trial_id, "epochs": final_epochs}
    previous = read_json(best_path).get("retrained") or {}
    current = (os.path.exists(model_path)
               and {k: previous.get(k) for k in retrained} == retrained)
    if retrain and not current:
        keras.backend.clear_session()
        strategy = search.distribution_strategy
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = hypermodel.build(best.hyperparameters)
        history = hypermodel.train(best.hyperparameters, model, train_source, val_source,
                                   final_epochs, verbose=verbose)
        history.model.save(model_path)
        record["retrained"] = {**retrained,
                               OBJECTIVE: float(history.history[OBJECTIVE][-1])}
    elif current:
        record["retrained"] = previous
    write_json(record, best_path)
    return TuneResult(directory, best_values, best.score, rows, search.trials_run,
                      model_path if "retrained" in record else None, search)


def write_json(value, path):
    """Write whole or not at all: chief and workers may read it meanwhile."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(temporary, path)


def read_json(path):
    """The JSON in `path`, or {} where there is no such file."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _rows(trials):
    rows = []
    for trial in trials:
        row = {"trial_id": trial.trial_id, "status": trial.status, OBJECTIVE: trial.score,
               "best_epoch": trial.best_step if trial.score is not None else None}
        row.update(trial.hyperparameters.values)
        for name in sorted(trial.metrics.metrics):
            if name != OBJECTIVE:
                row[name] = trial.metrics.get_last_value(name)
        row["error"] = last_line(trial.message) if trial.message else ""
        rows.append(row)
    return rows


def _write_csv(rows, path):
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    columns.remove("error")
    columns.append("error")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def _plot(rows, space, path):
    """Validation accuracy against each tuned number (learning rate, dropout, ...).

    Drawn on a `Figure` of its own, not through pyplot: the process's matplotlib
    backend and pyplot's current figure stay as they were (a notebook still
    shows its own plots after a search).
    """
    from matplotlib.figure import Figure

    scored = [r for r in rows if r[OBJECTIVE] is not None]
    names = [hp.name for hp in space.space
             if not isinstance(hp, kt.engine.hyperparameters.Fixed)
             and all(isinstance(r.get(hp.name), (int, float))
                     and not isinstance(r.get(hp.name), bool) for r in scored)]
    best = max(scored, key=lambda r: r[OBJECTIVE])
    panels = max(len(names), 1)
    fig = Figure(figsize=(4.5 * panels, 4))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, name in zip(axes, names):
        xs = [r[name] for r in scored]
        ax.scatter(xs, [r[OBJECTIVE] for r in scored], label="trials")
        ax.scatter([best[name]], [best[OBJECTIVE]], marker="*", s=200, color="red",
                   label=f"best (trial {best['trial_id']})")
        if name in ("learning_rate", "weight_decay") and min(xs) > 0:
            # Matplotlib's own log formatter labels the minor ticks only when
            # the values span about a decade or less, where no major tick falls.
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("validation top-1 accuracy")
        ax.legend()
    if not names:
        axes[0].text(0.5, 0.5, "no numeric hyperparameter tuned", ha="center")
    fig.suptitle(f"{len(scored)} completed trials")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
