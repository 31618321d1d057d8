"""Hyperparameter search with keras-tuner for any kcnn architecture.

    result = kcnn.tuning.tune("lenet5", "digits", tuner="random", max_trials=10,
                              epochs=5, directory="runs/tune/lenet5")
    result.best_hyperparameters     # {"learning_rate": 0.0031, "dropout": 0.12}

    kcnn tune lenet5 --data digits --tuner random --max-trials 10 --epochs 5 \\
              --out runs/tune/lenet5

Each trial is one `kcnn.train` run with the trial's values, so the values found
carry over to the long run. One job per module:

- `space`: the hyperparameters searched (`search_space`, `parse_space`);
- `hypermodel`: a kcnn architecture as a keras-tuner `HyperModel` that builds
  and trains one trial (`KcnnHyperModel`);
- `search`: `tune` itself, resuming a search, keras-tuner's chief and workers;
- `report`: the search directory's outputs (`trials.csv`, `tuning.png`,
  `best_hyperparameters.json`, the retrained `best_model.keras`), `TuneResult`
  and `TrialFailed`.

The `kcnn tune` command is `kcnn.cli.tune`; `python -m kcnn.tuning` runs it too.
"""

from kcnn.tuning.hypermodel import OBJECTIVE, KcnnHyperModel
from kcnn.tuning.report import (BEST_FILE, MODEL_FILE, OUTPUTS, PLOT_FILE, SEARCH_FILE,
                                TRIALS_FILE, TrialFailed, TuneResult)
from kcnn.tuning.search import PROJECT, TUNERS, tune
from kcnn.tuning.space import (DEFAULT_SPACE, HYPERPARAMETERS, OPTIMIZERS, parse_space,
                               search_space)

__all__ = ["BEST_FILE", "DEFAULT_SPACE", "HYPERPARAMETERS", "KcnnHyperModel", "MODEL_FILE",
           "OBJECTIVE", "OPTIMIZERS", "OUTPUTS", "PLOT_FILE", "PROJECT", "SEARCH_FILE",
           "TRIALS_FILE", "TUNERS", "TrialFailed", "TuneResult", "parse_space",
           "search_space", "tune"]
