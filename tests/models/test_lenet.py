import keras
import numpy as np
import pytest

import kcnn
from tests.utils import trainable_count


def test_reference_parameter_count():
    assert trainable_count(kcnn.lenet5()) == 61_706


def test_paper_32x32_input_is_unpadded_with_the_same_parameters():
    model = kcnn.lenet5(input_shape=(32, 32, 1))
    assert model.get_layer("conv1").padding == "valid"
    assert model.get_layer("conv1").output.shape[1:3] == (28, 28)
    assert trainable_count(model) == 61_706


def test_forward_pass_gives_probabilities():
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    y = keras.ops.convert_to_numpy(kcnn.lenet5()(x))
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_larger_inputs_keep_the_reference_head():
    model = kcnn.lenet5(input_shape=(40, 36, 3), classes=5)
    assert model.output_shape == (None, 5)
    assert model.get_layer("fc1").kernel.shape == (400, 120)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 5, 5, 16)),
                                            ("avg", (None, 16)), ("max", (None, 16))])
def test_include_top_false_pooling(pooling, shape):
    model = kcnn.lenet5(include_top=False, pooling=pooling)
    assert model.output_shape == shape


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match=r"input_shape=\(20, 20, 1\).*at least 28"):
        kcnn.lenet5(input_shape=(20, 20, 1))


def test_channels_first(channels_first):
    model = kcnn.lenet5(input_shape=(1, 28, 28))
    x = np.zeros((2, 1, 28, 28), "float32")
    assert tuple(model(x).shape) == (2, 10)
