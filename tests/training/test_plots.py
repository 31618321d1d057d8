"""kcnn's plotting helpers write their PNGs without touching matplotlib's
process-wide state: the pyplot backend (a notebook's inline display) and
pyplot's list of open figures."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import image as mpimg

import kcnn
from kcnn.inspect import plotting
from kcnn.training import plots


@pytest.fixture
def svg_backend():
    """pyplot on the svg backend (not kcnn's old Agg), restored afterwards."""
    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    yield matplotlib.get_backend()
    plt.switch_backend(before)


def test_plotting_helpers_leave_the_backend_and_pyplot_figures_alone(svg_backend, tmp_path):
    model = kcnn.lenet5()
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "top1": [0.4, 0.6],
               "val_top1": [0.3, 0.5]}
    images = np.random.default_rng(0).random((1, 28, 28, 1)).astype("float32")
    paths = {name: str(tmp_path / f"{name}.png")
             for name in ("curves", "confusion", "filters", "rate", "maps", "overlay")}

    plots.training_curves(history, paths["curves"])
    plots.confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"], paths["confusion"])
    plots.first_layer_filters(model, paths["filters"])
    plots.learning_rate(np.arange(4), [0.1, 0.1, 0.05, 0.0], paths["rate"], steps_per_epoch=2)
    kcnn.feature_maps(model, images, "conv1", path=paths["maps"])
    plotting.overlay(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4)), paths["overlay"])

    assert matplotlib.get_backend() == svg_backend
    assert plt.get_fignums() == []
    for name, path in paths.items():
        assert mpimg.imread(path).ndim == 3, name

