"""Class weights for imbalanced data: scikit-learn's 'balanced', carried by the pipeline."""

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from kcnn import losses
from kcnn.data import Augment, load, load_digits, train_pipeline
from kcnn.data.pipeline import class_counts

DIGITS = {"scale": 1 / 255, "mean": [0.3], "std": [0.33], "resize": None, "crop": 28,
          "interpolation": "bilinear"}


def test_balanced_weights_equal_scikit_learns():
    labels = np.random.default_rng(0).choice(6, size=500, p=[0.5, 0.2, 0.15, 0.1, 0.05, 0])
    counts = np.bincount(labels, minlength=7)
    weights = losses.class_weight("balanced", counts)
    present = np.unique(labels)
    expected = compute_class_weight("balanced", classes=present, y=labels)
    assert sorted(weights) == list(present)  # classes 5 and 6 have no examples
    np.testing.assert_allclose([weights[c] for c in present], expected, rtol=1e-12)
    assert losses.class_weight({0: 1.0, 3: 2.5}, counts) == {0: 1.0, 3: 2.5}
    assert losses.class_weight(None, counts) is None


def test_class_counts_read_the_labels_of_a_source():
    (x, y), _ = load_digits()
    assert class_counts(load((x, y))).tolist() == np.bincount(y).tolist()
    assert class_counts(load("digits", split="test")).sum() == 360


def test_pipeline_attaches_each_examples_class_weight():
    (x, y), _ = load_digits()
    source = load((x[:64], y[:64]))
    weights = {c: float(c + 1) for c in range(10)}
    batches = list(train_pipeline(source, DIGITS, batch_size=16, class_weight=weights,
                                  augment=None))
    assert all(len(batch) == 3 for batch in batches)
    for _, labels, sample_weight in batches:
        np.testing.assert_allclose(sample_weight.numpy(), labels.numpy() + 1.0)
    # mixed labels carry their classes' weights mixed in the same proportion
    mixed = train_pipeline(source, DIGITS, batch_size=16, class_weight=weights, one_hot=True,
                           augment=Augment(crop=False, flip=False, mixup=1.0))
    _, labels, sample_weight = next(iter(mixed))
    np.testing.assert_allclose(sample_weight.numpy(), labels.numpy() @ np.arange(1.0, 11.0),
                               rtol=1e-6)


@pytest.mark.parametrize("spec, message", [
    ("inverse", r"class_weight must be 'balanced', a dict"),
    ({12: 1.0}, r"class_weight keys must be class indices in \[0, 10\)"),
    ({1: -2.0}, r"class_weight values must be finite weights >= 0"),
])
def test_bad_class_weights_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        losses.class_weight(spec, np.ones(10))


def test_train_refuses_an_unknown_class_weight():
    with pytest.raises(ValueError, match=r"class_weight must be None, 'balanced' or a dict"):
        kcnn.train("lenet5", "digits", class_weight="inverse")


def recall_per_class(model, data):
    per_class = kcnn.evaluate(model, data)["per_class"]  # in class order
    return np.array([row["recall"] for row in per_class.values()])


def test_balanced_weights_raise_the_recall_of_rare_classes():
    (x, y), test = load_digits()
    keep = np.ones(len(y), bool)
    for c in range(7):  # classes 0-6 cut to a tenth of their examples
        members = np.flatnonzero(y == c)
        keep[members[len(members) // 10:]] = False
    data = (x[keep], y[keep])
    assert np.bincount(data[1]).tolist()[:7] == [14] * 7

    recall = {}
    for weights in (None, "balanced"):
        # Two epochs (16 batches of 32 each): the unweighted model still favours
        # the common classes, by 0.15-0.3 of the rare classes' recall on every
        # backend (seed 0).
        history = kcnn.train("lenet5", data, epochs=2, class_weight=weights,
                             validation_split=0.0, seed=0, verbose=0)
        recall[weights] = recall_per_class(history.model, test)
    assert recall["balanced"][:7].mean() >= recall[None][:7].mean() + 0.1, recall
    assert recall["balanced"].mean() > recall[None].mean(), recall
