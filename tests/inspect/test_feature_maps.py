"""Feature maps, their PNG grid, the first-layer filter grid, overlays and `kcnn explain`."""

import os

import keras
import numpy as np
import pytest
from matplotlib import image as mpimg
from PIL import Image

import kcnn
from kcnn.cli import build_parser
from kcnn.inspect import explain, feature_maps, overlay
from kcnn.training import plots


def _digits(n=3, fmt="channels_last"):
    x = np.random.default_rng(0).uniform(size=(n, 28, 28, 1)).astype("float32")
    return x if fmt == "channels_last" else x.transpose(0, 3, 1, 2)


def test_activations_of_named_layers(lenet):
    x = _digits()
    maps = feature_maps(lenet, x, ["conv1", "pool1", "fc3"])
    assert list(maps) == ["conv1", "pool1", "fc3"]
    assert maps["conv1"].shape == (3, 28, 28, 6) and maps["fc3"].shape == (3, 10)
    # pool1 is the 2x2 average of conv1's output; fc3 gives the logits.
    pooled = maps["conv1"].reshape(3, 14, 2, 14, 2, 6).mean(axis=(2, 4))
    np.testing.assert_allclose(maps["pool1"], pooled, atol=1e-5)
    probs = keras.ops.convert_to_numpy(lenet(x))
    e = np.exp(maps["fc3"] - maps["fc3"].max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probs, atol=1e-5)


def test_png_grid_is_a_real_image(lenet, tmp_path):
    one = os.fspath(tmp_path / "conv1.png")
    feature_maps(lenet, _digits(), "conv1", path=one, image_index=2)
    grid = mpimg.imread(one)
    # 6 channels: 3 columns, 2 rows, one inch (100 pixels) each.
    assert grid.shape[:2] == (200, 300) and grid.std() > 0.05
    both = os.fspath(tmp_path / "both.png")
    feature_maps(lenet, _digits(), ["conv1", "conv2"], path=both, max_channels=9)
    # 9 channels of conv2: 3 columns; conv1 takes 2 rows, conv2 3.
    assert mpimg.imread(both).shape[:2] == (500, 300)


def test_channels_first_maps_and_grid(channels_first, tmp_path):
    model = kcnn.lenet5()
    maps = feature_maps(model, _digits(2, "channels_first"), "conv2",
                        path=os.fspath(tmp_path / "m.png"))
    assert maps["conv2"].shape == (2, 16, 10, 10)
    assert mpimg.imread(os.fspath(tmp_path / "m.png")).shape[:2] == (400, 400)


def test_first_layer_filters_share_the_grid(lenet, tmp_path):
    path = os.fspath(tmp_path / "filters.png")
    plots.first_layer_filters(lenet, path)   # 6 filters of 5x5x1: 3 columns, 2 rows
    grid = mpimg.imread(path)
    assert grid.shape[:2] == (200, 300) and grid.std() > 0.05


def test_feature_map_errors(lenet, tmp_path):
    x = _digits()
    with pytest.raises(ValueError, match="no layer of that name"):
        feature_maps(lenet, x, "conv9")
    with pytest.raises(ValueError, match="'fc1' outputs shape .* cannot be drawn"):
        feature_maps(lenet, x, ["conv1", "fc1"], path=os.fspath(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="image_index must be an integer in"):
        feature_maps(lenet, x, "conv1", path=os.fspath(tmp_path / "x.png"), image_index=3)
    with pytest.raises(ValueError, match="layers must name at least one layer"):
        feature_maps(lenet, x, [])


def test_overlay_png_has_the_image_size(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    heat = np.zeros((20, 30))
    heat[5:10, 10:20] = 1.0
    blend = overlay(image, heat, os.fspath(tmp_path / "o.png"), alpha=0.5)
    written = np.asarray(Image.open(tmp_path / "o.png"))
    assert written.shape == (20, 30, 3)
    np.testing.assert_array_equal(written, blend)
    # Half the pixel and half jet's colour: dark blue at 0, dark red at 1.
    from matplotlib import colormaps

    for (i, j), value in (((0, 0), 0.0), ((7, 15), 1.0)):
        colour = np.array(colormaps["jet"](value)[:3])
        np.testing.assert_array_equal(
            written[i, j], np.rint(255 * (0.5 * image[i, j] / 255 + 0.5 * colour)))
    with pytest.raises(ValueError, match="heatmap must have the image's height and width"):
        overlay(image, heat[:10], os.fspath(tmp_path / "p.png"))


def _image_files(tmp_path, n=2):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = os.fspath(tmp_path / f"digit{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 36), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_explain_writes_overlays_of_what_the_model_saw(lenet, tmp_path):
    paths = _image_files(tmp_path)
    results = explain(lenet, paths, os.fspath(tmp_path / "out"), class_index=4)
    assert [r["overlay"] for r in results] == [
        os.fspath(tmp_path / "out" / f"digit{i}_gradcam.png") for i in range(2)]
    for r in results:
        assert mpimg.imread(r["overlay"]).shape[:2] == (28, 28)   # the model's input
        assert r["class_index"] == 4 and r["class_name"] == "4"
        assert 0.0 < r["probability"] < 1.0


def test_explain_command(lenet, tmp_path, capsys):
    model_path = os.fspath(tmp_path / "lenet.keras")
    lenet.save(model_path)
    paths = _image_files(tmp_path, 1)
    parser = build_parser()
    out = os.fspath(tmp_path / "cli")
    args = parser.parse_args(["explain", model_path, *paths, "--out", out, "--layer", "conv1"])
    assert args.run(args) == 0
    assert os.path.isfile(os.path.join(out, "digit0_gradcam.png"))
    assert "digit0_gradcam.png" in capsys.readouterr().out
    args = parser.parse_args(["explain", os.fspath(tmp_path / "none.keras"), *paths])
    with pytest.raises(ValueError, match="no such file"):
        args.run(args)
