"""Losses for classification and imbalanced data, through Keras's own losses.

    loss = kcnn.losses.create("focal", gamma=2.0)             # one-hot labels
    weights = kcnn.losses.class_weight("balanced", counts)   # {class: weight}

- `"crossentropy"`: `keras.losses.SparseCategoricalCrossentropy` on integer
  labels, or `CategoricalCrossentropy(label_smoothing=...)` on one-hot labels
  (smoothing, like MixUp and CutMix, needs one-hot labels:
  `kcnn.data.train_pipeline(..., one_hot=True)` makes them). Smoothing ε
  turns a one-hot row y into (1 - ε) y + ε / K, as
  `torch.nn.CrossEntropyLoss(label_smoothing=ε)` does.
- `"focal"`: `keras.losses.CategoricalFocalCrossentropy`, the focal loss of
  Lin et al. (2017), `-alpha * sum_c y_c (1 - p_c)^gamma log p_c`, which
  down-weights the examples the model already gets right; one-hot labels.
- Class weights: `class_weight("balanced", counts)` is scikit-learn's
  `compute_class_weight("balanced")`, n_samples / (n_classes * count_c),
  for the classes present; `fit` multiplies each example's loss by its
  class's weight (kcnn's pipelines attach them as sample weights).
"""

import difflib
import math

import keras
import numpy as np

NAMES = ("crossentropy", "focal")


def create(name="crossentropy", *, one_hot=None, from_logits=False, label_smoothing=0.0,
           gamma=2.0, alpha=0.25):
    """A Keras loss for single-label classification.

    Args:
        name: "crossentropy" or "focal".
        one_hot: whether the labels come one-hot (float rows); default: only
            when the loss needs them (`needs_one_hot`). Cross-entropy without
            smoothing takes either; smoothing and focal need one-hot labels.
        from_logits: the model outputs logits rather than probabilities.
        label_smoothing: ε in [0, 1).
        gamma, alpha: the focal loss's focusing exponent and weight (the
            paper's, Keras's and torchvision's `sigmoid_focal_loss` defaults:
            2.0 and 0.25; alpha may be a list, one weight per class).

    Returns:
        A `keras.losses.Loss`.
    """
    if name not in NAMES:
        close = difflib.get_close_matches(str(name), NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown loss name={name!r}.{hint} Available: {', '.join(NAMES)}.")
    label_smoothing = check_label_smoothing(label_smoothing)
    needed = needs_one_hot(name, label_smoothing)
    if one_hot is None:
        one_hot = needed
    elif needed and not one_hot:
        raise ValueError(f"loss {name!r} with label_smoothing={label_smoothing} needs "
                         f"one-hot labels; received one_hot=False.")
    if name == "focal":
        if (isinstance(gamma, bool) or not isinstance(gamma, (int, float))
                or not math.isfinite(gamma) or gamma < 0):
            raise ValueError(f"gamma must be a number >= 0; received gamma={gamma!r}.")
        weights = alpha if isinstance(alpha, (list, tuple)) else [alpha]
        if not weights or any(isinstance(a, bool) or not isinstance(a, (int, float))
                              or not math.isfinite(a) or a < 0 for a in weights):
            raise ValueError(f"alpha must be a number >= 0 or a list of them, one per "
                             f"class; received alpha={alpha!r}.")
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=alpha, gamma=float(gamma), from_logits=from_logits,
            label_smoothing=label_smoothing)
    if one_hot:
        return keras.losses.CategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def needs_one_hot(loss, label_smoothing=0.0):
    """Whether `loss` (a name or a Keras loss) takes one-hot labels."""
    if isinstance(loss, str):
        if loss in NAMES:
            return loss == "focal" or bool(label_smoothing)
        return not loss.startswith("sparse")
    fn = getattr(loss, "fn", None)
    return not (isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
                or getattr(fn, "__name__", "").startswith("sparse"))


def check_label_smoothing(label_smoothing):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1); received "
                         f"label_smoothing={label_smoothing!r}.")
    return float(label_smoothing)


def class_weight(spec, counts):
    """Class weights {class index: weight} for `fit` or `kcnn.data.train_pipeline`.

    Args:
        spec: "balanced" (scikit-learn's `compute_class_weight("balanced")`:
            n_samples / (n_classes * count_c) over the classes that have
            examples; absent classes get no entry, which `fit` reads as 1.0),
            a dict {class index: weight} (checked against the classes), or
            None (no weights).
        counts: the examples per class (`kcnn.data.class_counts(source)`).

    Returns:
        A dict, or None.
    """
    counts = np.asarray(counts, np.int64)
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec != "balanced":
            raise ValueError(f"class_weight must be 'balanced', a dict {{class: weight}} "
                             f"or None; received class_weight={spec!r}.")
        present = np.flatnonzero(counts > 0)
        if present.size == 0:
            raise ValueError("class_weight='balanced' needs examples; the counts are all 0.")
        weights = counts.sum() / (present.size * counts[present])
        return {int(c): float(w) for c, w in zip(present, weights)}
    if isinstance(spec, dict):
        bad = [k for k in spec if isinstance(k, bool) or not isinstance(k, (int, np.integer))
               or not 0 <= k < len(counts)]
        if bad:
            raise ValueError(f"class_weight keys must be class indices in [0, {len(counts)}); "
                             f"received class_weight={spec!r}.")
        if any(not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0
               for w in spec.values()):
            raise ValueError(f"class_weight values must be finite weights >= 0; received "
                             f"class_weight={spec!r}.")
        return {int(k): float(v) for k, v in spec.items()}
    raise ValueError(f"class_weight must be 'balanced', a dict {{class: weight}} or None; "
                     f"received class_weight={spec!r}.")
