import numpy as np
import pytest

import kcnn
from tests.utils import trainable_count


def test_reference_parameter_count():
    assert trainable_count(kcnn.simple_cnn()) == 390_858


def test_smallest_input_runs_with_the_reference_head():
    model = kcnn.simple_cnn(input_shape=(8, 8, 3))
    assert trainable_count(model) == 390_858 + 2 * 3 * 3 * 32
    y = model(np.zeros((2, 8, 8, 3), "float32"))
    assert tuple(y.shape) == (2, 10)


def test_dropout_rates_are_configurable_and_checked():
    model = kcnn.simple_cnn(dropout=(0.1, 0.2))
    assert model.get_layer("dropout1").rate == 0.1
    assert model.get_layer("dropout2").rate == 0.2
    with pytest.raises(ValueError, match="dropout"):
        kcnn.simple_cnn(dropout=1.5)


def test_global_head_accepts_any_size_without_top():
    model = kcnn.simple_cnn(include_top=False, pooling="avg", input_shape=(None, None, 1))
    assert tuple(model(np.zeros((1, 50, 37, 1), "float32")).shape) == (1, 128)
