"""kcnn.losses: focal loss and label smoothing through Keras's losses, against references."""

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import keras
import numpy as np
import pytest

from kcnn import losses

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(scale=3.0, size=(16, 5))
LABELS = RNG.integers(0, 5, 16)
ONE_HOT = np.eye(5)[LABELS]


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def focal_reference(y, p, gamma, alpha, smoothing=0.0):
    """Lin et al. (2017), in float64: -alpha * sum_c y_c (1 - p_c)^gamma log p_c."""
    y = y * (1 - smoothing) + smoothing / y.shape[-1]
    return np.mean(-np.sum(alpha * y * (1 - p) ** gamma * np.log(p), axis=-1))


def value(loss, y, pred):
    return float(keras.ops.convert_to_numpy(loss(y.astype("float32"), pred.astype("float32"))))


@pytest.mark.parametrize("gamma, alpha, smoothing", [(2.0, 0.25, 0.0), (0.5, 1.0, 0.0),
                                                     (2.0, 0.25, 0.1)])
def test_focal_loss_equals_the_float64_formula(gamma, alpha, smoothing):
    probs = softmax(LOGITS)
    expected = focal_reference(ONE_HOT, probs, gamma, alpha, smoothing)
    on_probs = losses.create("focal", gamma=gamma, alpha=alpha, label_smoothing=smoothing)
    on_logits = losses.create("focal", gamma=gamma, alpha=alpha, label_smoothing=smoothing,
                              from_logits=True)
    assert isinstance(on_probs, keras.losses.CategoricalFocalCrossentropy)
    assert value(on_probs, ONE_HOT, probs) == pytest.approx(expected, rel=2e-5)
    assert value(on_logits, ONE_HOT, LOGITS) == pytest.approx(expected, rel=2e-5)


def test_focal_loss_with_gamma_0_is_alpha_times_cross_entropy():
    focal = losses.create("focal", gamma=0.0, alpha=1.0, from_logits=True)
    plain = losses.create("crossentropy", from_logits=True)
    assert value(focal, ONE_HOT, LOGITS) == pytest.approx(value(plain, LABELS, LOGITS),
                                                          rel=1e-5)


def test_label_smoothing_equals_torchs_cross_entropy():
    torch = pytest.importorskip("torch")
    loss = losses.create("crossentropy", label_smoothing=0.1, from_logits=True)
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    reference = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(
        torch.from_numpy(LOGITS), torch.from_numpy(LABELS)).item()
    assert value(loss, ONE_HOT, LOGITS) == pytest.approx(reference, rel=1e-5)


def test_integer_labels_without_smoothing_use_the_sparse_loss():
    loss = losses.create("crossentropy")
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    assert not losses.needs_one_hot("crossentropy") and not losses.needs_one_hot(loss)
    assert losses.needs_one_hot("crossentropy", 0.1) and losses.needs_one_hot("focal")
    assert isinstance(losses.create("crossentropy", one_hot=True),
                      keras.losses.CategoricalCrossentropy)
    assert losses.needs_one_hot(keras.losses.CategoricalCrossentropy())
    assert not losses.needs_one_hot("sparse_categorical_crossentropy")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "focl"}, r"Unknown loss name='focl'. Did you mean 'focal'"),
    ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\); received"),
    ({"name": "focal", "gamma": -1}, r"gamma must be a number >= 0; received gamma=-1"),
    ({"label_smoothing": 0.1, "one_hot": False}, r"needs one-hot labels"),
])
def test_bad_loss_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        losses.create(**kwargs)
