# %% [markdown]
# # 5. Hyperparameter search: learning rate and dropout
#
# The learning rate is the setting that matters most, and dropout the one AlexNet made
# famous. Rather than guessing, search them: `kcnn.tune` runs keras-tuner over any kcnn
# architecture, each trial a `kcnn.train` run from the same initial weights, and writes
# the best values, a table of all trials, a plot, and the best model retrained. The
# ready jobs under `tuning/` are one command each (`python tuning/lenet5-digits.py`);
# this notebook runs the same search from Python and looks at the trials.
#
# Runs on any Keras backend; `KCNN_NOTEBOOK_SMALL=1` runs 2 one-epoch trials on a few
# images instead of 10 (a quick check that the code runs, not a lesson).

# %%
import os
import tempfile

import kcnn  # first: it orders the imports of keras, TensorFlow and torch
import keras
import matplotlib.pyplot as plt
import numpy as np

SMALL = os.environ.get("KCNN_NOTEBOOK_SMALL") == "1"
plt.rcParams["figure.dpi"] = 72
print(f"backend: {keras.backend.backend()}, {'small' if SMALL else 'full'} run")

DATA = TEST = "digits"  # the digits' training and test splits, by name
if SMALL:
    (x_train, y_train), (x_test, y_test) = kcnn.data.load_digits()
    DATA, TEST = (x_train[:256], y_train[:256]), (x_test[:64], y_test[:64])

# %% [markdown]
# ## The search space
#
# By default the learning rate is searched on a log scale between 1e-4 and 1e-1 (each
# decade equally likely) and dropout uniformly between 0 and 0.6. LeNet-5 has no
# dropout of its own, so the hypermodel puts one `Dropout` layer before its last dense
# layer (parameter count and inference unchanged). The space can be changed, for
# example `space={"optimizer": ["adamw", "sgd"]}`.

# %%
for hp in kcnn.tuning.search_space().space:
    print(type(hp).__name__, hp.get_config())

# %% [markdown]
# ## A random search on the digits
#
# Each trial trains LeNet-5 with the default recipe (AdamW, warm-up and cosine decay)
# and is scored by its best validation top-1 accuracy on a held-out 10% of the
# training images.

# %%
directory = os.path.join(tempfile.mkdtemp(prefix="kcnn-tune-"), "lenet5-digits")
result = kcnn.tune("lenet5", DATA, directory=directory, tuner="random",
                   max_trials=2 if SMALL else 10, epochs=1 if SMALL else 4, verbose=0)
print("best:", {k: round(v, 5) if isinstance(v, float) else v
                for k, v in result.best_hyperparameters.items()},
      f"validation top-1 {result.best_score:.3f}")
print("files:", sorted(os.listdir(directory)))

# %% [markdown]
# ## The trials
#
# `trials.csv` has one row per trial. Plotted against the learning rate (log scale),
# with dropout as the colour: too small a rate learns too little in a few epochs, too
# large a rate diverges, and the good region spans about a decade. Dropout matters far
# less for a network this small on this little data.

# %%
objective = kcnn.tuning.OBJECTIVE  # the validation top-1 accuracy
trials = [t for t in result.trials if t.get(objective) not in (None, "")]
rates = np.array([float(t["learning_rate"]) for t in trials])
dropouts = np.array([float(t["dropout"]) for t in trials])
scores = np.array([float(t[objective]) for t in trials])
print(f"{'trial':>5} {'learning_rate':>14} {'dropout':>8} {'val top-1':>10}")
for t, r, d, s in sorted(zip([t["trial_id"] for t in trials], rates, dropouts, scores),
                         key=lambda row: -row[3]):
    print(f"{t:>5} {r:14.2e} {d:8.3f} {s:10.3f}")

fig, ax = plt.subplots(figsize=(7, 4))
points = ax.scatter(rates, scores, c=dropouts, cmap="viridis", s=70, vmin=0, vmax=0.6)
fig.colorbar(points, label="dropout")
ax.set_xscale("log")
ax.set_xlabel("learning rate")
ax.set_ylabel("validation top-1")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# `kcnn.tune` also wrote its own plot, `tuning.png`:

# %%
from IPython.display import Image  # noqa: E402

Image(filename=os.path.join(directory, "tuning.png"))

# %% [markdown]
# ## The best model
#
# The best values were retrained from scratch into `best_model.keras`, a normal Keras
# file with kcnn's metadata (preprocessing and class names):

# %%
best = keras.saving.load_model(result.model_path)
evaluation = kcnn.evaluate(best, TEST)
print(f"test top-1 of the retrained best model: {evaluation['top1']:.3f}")

# %% [markdown]
# ## Resuming and scaling out
#
# Running the same search again continues it: finished trials are kept and only new
# ones run (here the budget is raised by one). On several machines, keras-tuner's
# chief/worker mode shares one directory: `python tuning/distributed.py --workers 2 ...`
# starts a chief and workers with `KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and
# `KERASTUNER_ORACLE_PORT` set (see `tuning/README.md`).

# %%
again = kcnn.tune("lenet5", DATA, directory=directory, tuner="random",
                  max_trials=(2 if SMALL else 10) + 1, epochs=1 if SMALL else 4,
                  retrain=False, verbose=0)
print(f"trials run by this call: {again.trials_run}; trials in the table: {len(again.trials)}")
