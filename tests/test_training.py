"""A model trains on every backend: real data, real steps, the loss falls."""

import keras
import numpy as np

import kcnn
from kcnn.data import load_digits


def test_digits_are_real_stratified_uint8_images():
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (1437, 28, 28, 1) and x_test.shape == (360, 28, 28, 1)
    assert x_train.dtype == np.uint8 and x_train.max() == 255
    assert np.bincount(y_test).min() >= 35  # stratified: every class in the test set


def test_lenet5_learns_the_digits_in_a_few_steps():
    (x, y), _ = load_digits()
    x = (x[:256].astype("float32") - 50.0) / 90.0
    y = y[:256]
    model = kcnn.lenet5()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.5 * before
