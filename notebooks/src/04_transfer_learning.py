# %% [markdown]
# # 4. Transfer learning and fine-tuning
#
# Most networks are not trained from scratch: a backbone trained on a large task is
# given a new head and fine-tuned on the small task at hand. Its early layers detect
# edges and strokes that are useful everywhere; only the last layers are specific.
#
# Here at small scale, fully offline: the backbone learns the digits 0-4 from all their
# examples; the new task is the digits 5-9 from only 15 images per class. We compare a
# new head on a frozen backbone, gradual unfreezing with discriminative learning
# rates (kcnn's `fine_tune`), and the same network trained from scratch.
#
# Runs on any Keras backend; `KCNN_NOTEBOOK_SMALL=1` trains on a few images for one or
# two epochs (a quick check that the code runs, not a lesson).

# %%
import os

import kcnn  # first: it orders the imports of keras, TensorFlow and torch
import keras
import matplotlib.pyplot as plt
import numpy as np
from kcnn import transfer

SMALL = os.environ.get("KCNN_NOTEBOOK_SMALL") == "1"
plt.rcParams["figure.dpi"] = 72
print(f"backend: {keras.backend.backend()}, {'small' if SMALL else 'full'} run")

(x_train, y_train), (x_test, y_test) = kcnn.data.load_digits()
if SMALL:
    x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:100], y_test[:100]
old = y_train < 5
new_test = y_test >= 5
rng = np.random.default_rng(0)
few = np.concatenate([rng.choice(np.nonzero(y_train == c)[0], 15, replace=False)
                      for c in range(5, 10)])
x_new, y_new = x_train[few], y_train[few] - 5          # labels 0..4 for "5".."9"
x_new_test, y_new_test = x_test[new_test], y_test[new_test] - 5
print(f"backbone task: {old.sum()} images of 0-4; new task: {len(few)} images of 5-9, "
      f"{new_test.sum()} to test")

# %% [markdown]
# ## The backbone
#
# The small BatchNorm CNN of the MNIST tutorials (`kcnn.simple_cnn`), trained on the
# digits 0-4.

# %%
backbone = kcnn.simple_cnn(classes=5)
kcnn.train(backbone, (x_train[old], y_train[old]), epochs=1 if SMALL else 8, verbose=0)
print("backbone test top-1 on 0-4:",
      round(kcnn.evaluate(backbone, (x_test[y_test < 5], y_test[y_test < 5]))["top1"], 3))
print("stages:", {name: len(layers) for name, layers in transfer.stages(backbone).items()})

# The new models share the backbone's layers (as keras.applications transfer learning
# does), so each experiment below starts from its own copy, loaded from this file.
import tempfile  # noqa: E402

backbone_file = os.path.join(tempfile.mkdtemp(prefix="kcnn-transfer-"), "digits04.keras")
backbone.save(backbone_file)

# %% [markdown]
# ## A new head
#
# `replace_classifier` keeps every layer up to the features and puts a new dense layer
# (here with dropout before it) for the new classes; the metadata's class names follow.
# `freeze` then stops the backbone from training; its batch-norm layers run in
# inference mode, as Keras recommends, so their statistics are not disturbed by the
# few new images.

# %%
names = [str(d) for d in range(5, 10)]
head_only = transfer.replace_classifier(keras.saving.load_model(backbone_file), names,
                                        dropout=0.2)
transfer.freeze(head_only)
print("trainable weights:", [w.path for w in head_only.trainable_weights])
print("class names:", head_only.metadata["class_names"])

# %% [markdown]
# ## Three ways to learn the new task
#
# The same epochs for each:
#
# - **head only**: the frozen backbone's features, a new classifier;
# - **fine-tuned**: `transfer.fine_tune`, which trains the head first, then unfreezes one
#   stage more per epoch from the top (gradual unfreezing, recompiling between phases
#   while keeping the optimizer's state), with the backbone at a tenth of the head's
#   learning rate (discriminative rates, one optimizer step);
# - **from scratch**: the same architecture with random weights, with the rate and
#   recipe `kcnn.train` picks for small grayscale images.
#
# The new head starts from zero weights; with 75 images there are only 3 steps per
# epoch, so the head's rate is 1e-2.

# %%
epochs = 2 if SMALL else 12
results = {}

for label, unfreeze in (("head only", "none"), ("fine-tuned", "gradual")):
    results[label] = transfer.fine_tune(backbone_file, (x_new, y_new), epochs=epochs,
                                        unfreeze=unfreeze, learning_rate=1e-2, dropout=0.2,
                                        validation_split=None, verbose=0)
scratch = kcnn.simple_cnn(classes=5)
results["from scratch"] = kcnn.train(scratch, (x_new, y_new), epochs=epochs,
                                     validation_split=None, verbose=0)

for label, history in results.items():
    score = kcnn.evaluate(history.model, (x_new_test, y_new_test))["top1"]
    print(f"{label:<13} test top-1 on 5-9: {score:.3f}")

# %%
for label, history in results.items():
    plt.plot(history.history["loss"], label=label)
plt.xlabel("epoch")
plt.ylabel("training loss")
plt.yscale("log")
plt.legend()
plt.show()

# %% [markdown]
# With 15 images per class the test scores move by several points from one seed to the
# next, so read them as a rough ranking. A frozen backbone's features, learned on other
# digits, get only part of the way; letting the backbone adapt helps most. `fine_tune`'s
# cosine decay brings the rate to zero over these few steps, which the version by hand
# below (a constant rate) does not.
#
# ## Gradual unfreezing, step by step
#
# What `fine_tune` did, by hand: a schedule of the epoch at which each stage starts
# training, and an optimizer with one learning rate per stage group.

# %%
model = transfer.replace_classifier(keras.saving.load_model(backbone_file), names,
                                    dropout=0.2)
schedule = transfer.gradual_schedule(model, epochs)
print("stage -> first epoch it trains:", schedule)
optimizer = transfer.discriminative_optimizer(model, keras.optimizers.AdamW(1e-2),
                                              backbone=0.1)
data = kcnn.data.train_pipeline(kcnn.data.load((x_new, y_new)),
                                model.metadata["preprocessing"], batch_size=32,
                                augment=kcnn.data.Augment(crop=False, flip=False, shift=2))
history = transfer.fit_gradually(model, data, epochs=epochs, schedule=schedule,
                                 optimizer=optimizer,
                                 loss="sparse_categorical_crossentropy", verbose=0)
print("test top-1 on 5-9:",
      round(kcnn.evaluate(model, (x_new_test, y_new_test))["top1"], 3))

# %% [markdown]
# ## An ensemble
#
# The AlexNet paper's best result averaged several networks' predictions.
# `kcnn.transfer.ensemble` makes one Keras model that averages its members'
# probabilities, even when they come from the same builder and share layer names.

# %%
members = [results["fine-tuned"].model, results["head only"].model, model]
team = transfer.ensemble(members)
for label, member in zip(("fine-tuned", "head only", "by hand"), members):
    print(f"{label:<10} {kcnn.evaluate(member, (x_new_test, y_new_test))['top1']:.3f}")
print(f"{'ensemble':<10} {kcnn.evaluate(team, (x_new_test, y_new_test))['top1']:.3f}")
