"""AlexNet in torchvision's layout and the 2012 paper's.

The three full-size models (about 61M parameters each; 5-15 s each to
initialise on JAX) are built once per module and run forward once; everything
else uses models without the top (2-4M parameters) at the smallest inputs.
Forward passes go through `predict_on_batch`: one compiled graph on JAX instead
of op-by-op dispatch, which is 3x slower there for the LRN layers.
"""

import keras
import numpy as np
import pytest

import kcnn
from kcnn.layers import GroupedConv2D, LocalResponseNormalization
from tests.utils import counted_once, reference_count, trainable_count

# torchvision's AlexNet state dict: weighted module -> (Keras kernel shape).
TORCHVISION_KERNELS = {
    "features_0": (11, 11, 3, 64),
    "features_3": (5, 5, 64, 192),
    "features_6": (3, 3, 192, 384),
    "features_8": (3, 3, 384, 256),
    "features_10": (3, 3, 256, 256),
    "classifier_1": (9216, 4096),
    "classifier_4": (4096, 4096),
    "classifier_6": (4096, 1000),
}



def _images(size, channels=3, batch=1):
    return np.random.default_rng(0).uniform(size=(batch, size, size, channels)).astype("float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _predict(model, x):
    return _numpy(model.predict_on_batch(x))


@pytest.fixture(scope="module")
def torchvision_model():
    return kcnn.alexnet()


@pytest.fixture(scope="module")
def paper_model():
    keras.utils.set_random_seed(0)
    return kcnn.alexnet(variant="paper", init="paper")


@pytest.fixture(scope="module")
def paper_features():
    """The paper's layout without the top at its smallest input, Keras's init."""
    keras.utils.set_random_seed(0)
    return kcnn.alexnet(variant="paper", include_top=False, input_shape=(67, 67, 3))


def test_torchvision_layout_parameter_count_and_names(torchvision_model):
    assert trainable_count(torchvision_model) == 61_100_840
    kernels = {layer.name: tuple(layer.kernel.shape)
               for layer in torchvision_model.layers if layer.weights}
    assert kernels == TORCHVISION_KERNELS
    assert torchvision_model.input_shape == (None, 224, 224, 3)
    # torch's Conv2d(3, 64, 11, stride=4, padding=2): torch's symmetric zero padding.
    assert torchvision_model.get_layer("features_0").padding == (2, 2)


def test_torchvision_layout_forward_gives_probabilities(torchvision_model):
    y = _predict(torchvision_model, _images(224))
    assert y.shape == (1, 1000)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_paper_layout_parameter_count(paper_model):
    assert trainable_count(paper_model) == 60_965_224
    assert paper_model.input_shape == (None, 227, 227, 3)


def test_paper_layout_groups_change_only_the_grouped_convolutions(paper_features):
    """groups=1 adds 1,413,120 weights to conv2, conv4 and conv5; the head is the same.

    The full groups=1 model is counted without weights below; this allocates
    3M parameters instead of 62M on every backend.
    """
    head = 60_965_224 - 2_334_080  # fc6, fc7, fc8
    assert trainable_count(paper_features) == 2_334_080
    ungrouped = kcnn.alexnet(variant="paper", groups=1, include_top=False,
                             input_shape=(67, 67, 3))
    assert trainable_count(ungrouped) == 3_747_200
    assert 3_747_200 + head == 62_378_344


@counted_once
def test_paper_layout_parameter_count_with_groups_1():
    assert reference_count("alexnet", variant="paper", groups=1) == 62_378_344


def test_paper_layout_forward_gives_probabilities(paper_model):
    y = _predict(paper_model, _images(227))
    assert y.shape == (1, 1000)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_paper_layout_order_is_conv_relu_lrn_pool(paper_model):
    names = [layer.name for layer in paper_model.layers]
    start = names.index("conv1")
    assert names[start:] == [
        "conv1", "relu1", "lrn1", "pool1",
        "conv2", "relu2", "lrn2", "pool2",
        "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5",
        "avgpool", "flatten",
        # The paper drops the outputs of the hidden dense layers.
        "fc6", "relu6", "dropout6", "fc7", "relu7", "dropout7", "fc8", "predictions",
    ]
    lrns = [layer for layer in paper_model.layers
            if isinstance(layer, LocalResponseNormalization)]
    assert [layer.name for layer in lrns] == ["lrn1", "lrn2"]
    for layer in lrns:
        assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)
    assert paper_model.get_layer("lrn1").output.shape[1:] == (55, 55, 96)
    assert paper_model.get_layer("pool5").output.shape[1:] == (6, 6, 256)


def test_paper_layout_groups(paper_model):
    groups = {name: paper_model.get_layer(name).groups
              for name in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    for name in ("conv2", "conv4", "conv5"):
        assert isinstance(paper_model.get_layer(name), GroupedConv2D)
    assert tuple(paper_model.get_layer("conv2").kernel.shape) == (5, 5, 48, 256)


def test_paper_init_statistics(paper_model):
    fc6 = _numpy(paper_model.get_layer("fc6").kernel)
    assert abs(fc6.std() - 0.01) < 0.0002
    assert abs(fc6.mean()) < 0.0002
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc7", "fc8"):
        std = _numpy(paper_model.get_layer(name).kernel).std()
        assert abs(std - 0.01) < 0.0005, (name, std)
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        np.testing.assert_array_equal(_numpy(paper_model.get_layer(name).bias), 1.0)
    for name in ("conv1", "conv3", "fc8"):
        np.testing.assert_array_equal(_numpy(paper_model.get_layer(name).bias), 0.0)


def test_keras_init_keeps_keras_defaults(paper_features):
    model = paper_features
    np.testing.assert_array_equal(_numpy(model.get_layer("conv2").bias), 0.0)
    limit = np.sqrt(6 / (11 * 11 * 3 + 11 * 11 * 96))  # glorot_uniform
    assert np.abs(_numpy(model.get_layer("conv1").kernel)).max() <= limit


def test_paper_metadata(paper_model):
    assert paper_model.metadata["input_size"] == [227, 227]
    assert paper_model.metadata["preprocessing"]["crop"] == 227
    assert paper_model.metadata["preprocessing"]["resize"] == 256


def test_include_top_false_pooling_at_the_smallest_inputs():
    for variant, size in (("torchvision", 63), ("paper", 67)):
        for pooling, shape in ((None, (1, 1, 256)), ("avg", (256,)), ("max", (256,))):
            model = kcnn.alexnet(variant=variant, include_top=False, pooling=pooling,
                                 input_shape=(size, size, 3))
            assert model.output_shape == (None, *shape)
        # The paper's layout runs at 67x67 in the tests below.
        if variant == "torchvision":
            assert _predict(model, _images(size)).shape == (1, 256)


def test_too_small_input_is_refused():
    for variant, size in (("torchvision", 62), ("paper", 66)):
        with pytest.raises(ValueError, match=rf"too small.*at least {size + 1}"):
            kcnn.alexnet(variant=variant, input_shape=(size, size, 3))


@pytest.mark.parametrize("variant", ["torchvision", "paper"])
def test_variable_size_needs_include_top_false(variant):
    with pytest.raises(ValueError, match="fixed input size"):
        kcnn.alexnet(variant=variant, input_shape=(None, None, 3))
    model = kcnn.alexnet(variant=variant, include_top=False, pooling="avg",
                         input_shape=(None, None, 3))
    if variant == "paper":
        for size in (67, 80):
            assert _predict(model, _images(size)).shape == (1, 256)


def test_input_tensor_and_grayscale():
    inputs = keras.Input((67, 67, 1))
    model = kcnn.alexnet(variant="paper", include_top=False, input_tensor=inputs)
    assert model.inputs[0] is inputs
    assert tuple(model.get_layer("conv1").kernel.shape) == (11, 11, 1, 96)
    assert model.output_shape == (None, 1, 1, 256)


def test_paper_layout_channels_first_equals_channels_last(paper_features):
    """Grouped convolutions and LRN on the channel axis 1 give the same features."""
    last = paper_features
    keras.config.set_image_data_format("channels_first")
    first = kcnn.alexnet(variant="paper", include_top=False, input_shape=(3, 67, 67))
    assert first.get_layer("conv2").data_format == "channels_first"
    assert first.get_layer("lrn1").data_format == "channels_first"
    first.set_weights(last.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 67, 67, 3)).astype("float32") * 50
    y_last = _predict(last, x)
    y_first = _predict(first, x.transpose(0, 3, 1, 2))
    assert y_first.shape == (2, 256, 1, 1)
    np.testing.assert_allclose(y_first.transpose(0, 2, 3, 1), y_last, rtol=1e-4,
                               atol=1e-4 * np.abs(y_last).max())


def test_paper_layout_keras_file_round_trip(tmp_path):
    """Without the top: with it the file is 244 MB and takes 10-16 s to write."""
    model = kcnn.create_model("alexnet", variant="paper", include_top=False,
                              pooling="avg", input_shape=(67, 67, 3))
    assert model.name == "alexnet" and "lrn2" in [layer.name for layer in model.layers]
    path = tmp_path / "alexnet_paper.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.get_layer("conv4"), GroupedConv2D)
    assert restored.metadata == model.metadata
    x = _images(67, batch=2)
    np.testing.assert_array_equal(_predict(restored, x), _predict(model, x))


def test_bad_family_arguments_are_refused():
    cases = [
        (dict(variant="caffe"), r"variant must be one of 'torchvision', 'paper'.*'caffe'"),
        (dict(init="he"), r"init must be one of 'keras', 'torchvision', 'paper'.*'he'"),
        (dict(init="paper"), r"init='paper'.*variant='torchvision'"),
        (dict(groups=2), r"groups applies to variant='paper' only.*groups=2"),
        (dict(variant="paper", groups=3), r"groups must be one of 1, 2, 4.*groups=3"),
        (dict(variant="paper", groups=2.0), r"groups must be one of.*groups=2.0"),
        (dict(dropout=1.0), r"dropout must be a rate in \[0, 1\).*1.0"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            kcnn.alexnet(**kwargs)
