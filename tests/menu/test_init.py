"""The builders' `init=`: the statistics of freshly created weights.

Two independent checks of init="torchvision": every kernel against the formula
of torchvision's source for its family (written out here in torch's terms), and
every tensor against a torchvision model freshly initialised by torchvision
itself (its state dict loaded into a kcnn model). init="keras" against Glorot
uniform, init="paper" against the AlexNet paper.
"""

import math

import keras
import numpy as np
import pytest

import kcnn
from kcnn.inspect import without_weights

# Tensors this large estimate a standard deviation to about 0.5%.
LARGE = 20_000
TOLERANCE = 0.03


def _torch_fans(layer, kernel):
    """torch's (fan_in, fan_out) of a Keras kernel (torch's layout differs)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, _ = kernel.shape  # torch: (C, 1, kh, kw)
        return kh * kw, channels * kh * kw
    if kernel.ndim == 4:
        kh, kw, in_per_group, out = kernel.shape  # torch: (out, in / groups, kh, kw)
        return in_per_group * kh * kw, out * kh * kw
    return kernel.shape  # Dense (in, out) is torch's (out, in)


def _keras_fans(kernel):
    receptive = int(np.prod(kernel.shape[:-2])) if kernel.ndim == 4 else 1
    return kernel.shape[-2] * receptive, kernel.shape[-1] * receptive


# Expected kernel std and bias rule per rule name; `u`: uniform (std is bound / sqrt 3).
def _uniform_std(bound):
    return bound / math.sqrt(3)


KERNEL_STD = {
    "torch": lambda fi, fo: _uniform_std(1 / math.sqrt(fi)),
    "he_out": lambda fi, fo: math.sqrt(2 / fo),
    "he_in": lambda fi, fo: math.sqrt(2 / fi),
    "n001": lambda fi, fo: 0.01,
    "u_out": lambda fi, fo: _uniform_std(1 / math.sqrt(fo)),
}
# family: (conv kernel, conv bias, dense kernel, dense bias), read off
# torchvision's source (`_initialize_weights` or the end of `__init__`).
TORCHVISION = {
    "alexnet": ("torch", "torch", "torch", "torch"),  # no init code: torch's defaults
    "vgg11": ("he_out", "zeros", "n001", "zeros"),
    "resnet18": ("he_out", None, "torch", "torch"),
    "densenet121": ("he_in", None, "torch", "zeros"),
    "googlenet": ("n001", None, "n001", "torch"),
    "mobilenet_v2": ("he_out", None, "n001", "zeros"),
    "efficientnet_b0": ("he_out", "zeros", "u_out", "zeros"),
    "lenet5": ("torch", "torch", "torch", "torch"),  # torch's defaults
    "simple_cnn": ("torch", "torch", "torch", "torch"),
}
BUILD = {
    "alexnet": dict(input_shape=(67, 67, 3)),
    "vgg11": dict(input_shape=(32, 32, 3)),
    "resnet18": dict(input_shape=(32, 32, 3)),
    "densenet121": dict(input_shape=(32, 32, 3)),
    "googlenet": dict(input_shape=(64, 64, 3), aux_logits=True),
    "mobilenet_v2": dict(input_shape=(32, 32, 3)),
    "efficientnet_b0": dict(input_shape=(32, 32, 3)),
    "lenet5": {},
    "simple_cnn": {},
}


def _weighted(model):
    for layer in model.layers:
        kernel = getattr(layer, "depthwise_kernel", None)
        if kernel is None:
            kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            bias = layer.bias if getattr(layer, "use_bias", False) else None
            yield layer, keras.ops.convert_to_numpy(kernel), (
                None if bias is None else keras.ops.convert_to_numpy(bias))


def _check_kernel(label, kernel, expected_std, uniform_bound=None):
    if uniform_bound is not None:
        assert np.abs(kernel).max() <= uniform_bound * (1 + 1e-6), label
    if kernel.size >= LARGE:
        assert kernel.std() == pytest.approx(expected_std, rel=TOLERANCE), label
        assert abs(kernel.mean()) < 5 * expected_std / math.sqrt(kernel.size), label


def _check_bias(label, bias, rule, fan_in):
    if rule == "zeros":
        assert not bias.any(), label
    else:  # torch's default: U(+-1/sqrt(fan_in))
        bound = 1 / math.sqrt(fan_in)
        assert bias.any() and np.abs(bias).max() <= bound * (1 + 1e-6), label


@pytest.fixture(scope="module")
def torchvision_init(request):
    """(builder, a model freshly built with init="torchvision"): one per builder for
    the module (pytest groups the tests by it), shared by both checks."""
    builder = request.param
    keras.utils.set_random_seed(0)
    return builder, getattr(kcnn.models, builder)(init="torchvision", **BUILD[builder])


@pytest.mark.parametrize("torchvision_init", sorted(TORCHVISION), indirect=True)
def test_torchvision_init_follows_the_familys_formula(torchvision_init):
    builder, model = torchvision_init
    conv_rule, conv_bias, dense_rule, dense_bias = TORCHVISION[builder]
    large = 0
    seen = set()
    for layer, kernel, bias in _weighted(model):
        label = f"{builder}/{layer.name} {kernel.shape}"
        assert kernel.tobytes() not in seen, f"{label}: the same draw as another layer"
        seen.add(kernel.tobytes())
        fan_in, fan_out = _torch_fans(layer, kernel)
        rule, bias_rule = ((dense_rule, dense_bias) if isinstance(layer, keras.layers.Dense)
                           else (conv_rule, conv_bias))
        std = KERNEL_STD[rule](fan_in, fan_out)
        bound = {"torch": 1 / math.sqrt(fan_in),
                 "u_out": 1 / math.sqrt(fan_out)}.get(rule)
        _check_kernel(label, kernel, std, bound)
        large += kernel.size >= LARGE
        if bias is not None:
            _check_bias(label, bias, bias_rule, fan_in)
    assert large >= 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta = (keras.ops.convert_to_numpy(w) for w in (layer.gamma, layer.beta))
            assert (gamma == 1).all() and not beta.any()


@pytest.mark.parametrize("builder", ["resnet18", "mobilenet_v2", "lenet5"])
def test_keras_init_is_glorot_uniform_with_zero_biases(builder):
    keras.utils.set_random_seed(0)
    model = getattr(kcnn.models, builder)(init="keras", **BUILD[builder])
    for layer, kernel, bias in _weighted(model):
        fan_in, fan_out = _keras_fans(kernel)
        bound = math.sqrt(6 / (fan_in + fan_out))
        _check_kernel(f"{builder}/{layer.name}", kernel, _uniform_std(bound), bound)
        if bias is not None:
            assert not bias.any()


def test_alexnet_paper_init():
    keras.utils.set_random_seed(0)
    model = kcnn.models.alexnet(variant="paper", init="paper", input_shape=(67, 67, 3))
    for layer, kernel, bias in _weighted(model):
        _check_kernel(layer.name, kernel, 0.01)
        ones = layer.name in ("conv2", "conv4", "conv5", "fc6", "fc7")
        assert (bias == (1.0 if ones else 0.0)).all(), layer.name


def test_defaults_and_initializers_survive_saving(tmp_path):
    """Defaults: torchvision's scheme for its families, Keras's for the Keras-era ones."""
    import inspect

    for builder, default in (("resnet18", "torchvision"), ("vgg16", "torchvision"),
                             ("alexnet", "keras"), ("lenet5", "keras")):
        parameter = inspect.signature(getattr(kcnn.models, builder)).parameters["init"]
        assert parameter.default == default, builder
    model = kcnn.models.efficientnet_b0(init="torchvision", input_shape=(32, 32, 3),
                                        classes=7)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    config = loaded.get_layer("classifier_1").get_config()["kernel_initializer"]
    assert config["class_name"] == "RandomUniform"
    assert config["config"]["maxval"] == pytest.approx(1 / math.sqrt(7))


@pytest.mark.parametrize("builder, init", [("vgg11", "paper"), ("resnet18", "he"),
                                           ("lenet5", None), ("alexnet", "Keras")])
def test_bad_init_names_the_argument_and_the_choices(builder, init):
    with pytest.raises(ValueError, match=r"init must be one of 'keras', 'torchvision'"):
        getattr(kcnn.models, builder)(init=init, **BUILD[builder])


# The reference: torchvision's own freshly initialised models. The AlexNet and
# VGG weights do not depend on the input size (adaptive pooling before the
# classifier), so the formula test's small inputs serve.
TORCHVISION_MODELS = sorted(set(TORCHVISION) - {"lenet5", "simple_cnn"})


@pytest.mark.parametrize("torchvision_init", TORCHVISION_MODELS, indirect=True)
def test_torchvision_init_matches_torchvision_itself(torchvision_init):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from kcnn.weights.torch_state_dict import load_state_dict

    builder, ours = torchvision_init
    torch.manual_seed(0)
    kwargs = {"aux_logits": True, "init_weights": True} if builder == "googlenet" else {}
    reference = getattr(torchvision.models, builder)(weights=None, **kwargs)
    # torchvision's draws in kcnn's layout: loaded into a model built without
    # weights, they live in the scope; nothing is allocated or drawn by Keras.
    with without_weights():
        theirs = getattr(kcnn.models, builder)(**BUILD[builder])
        load_state_dict(theirs, reference.state_dict())
        drawn = [keras.ops.convert_to_numpy(v.value) for v in theirs.weights]
    compared = 0
    for variable, b in zip(ours.weights, drawn, strict=True):
        a = keras.ops.convert_to_numpy(variable)
        label = f"{builder}/{variable.path} {a.shape}"
        assert a.shape == b.shape, label
        assert a.any() == b.any(), label
        assert (a.min() == a.max()) == (b.min() == b.max()), label
        if a.size >= LARGE:
            assert a.std() == pytest.approx(b.std(), rel=TOLERANCE), label
            compared += 1
        elif a.size >= 500 and b.std() > 0:
            assert a.std() == pytest.approx(b.std(), rel=0.35), label
    assert compared >= 3


def test_train_builds_a_named_model_with_init():
    rng = np.random.default_rng(0)
    data = (rng.random((64, 28, 28, 1), dtype=np.float32), np.arange(64) % 10)
    history = kcnn.train("lenet5", data, epochs=1, init="torchvision",
                         validation_split=0.0, verbose=0)
    bias = keras.ops.convert_to_numpy(history.model.get_layer("fc1").bias)
    assert bias.any()  # torch's default bias, not Keras's zeros
    with pytest.raises(ValueError, match=r"init applies to a model built by name.*'paper'"):
        kcnn.train(kcnn.models.lenet5(), data, epochs=1, init="paper", verbose=0)


# kcnn's RandomNormal / RandomUniform draw with numpy on the host on JAX, where
# each of JAX's random ops compiles for its shape; Keras's draws elsewhere.
@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="JAX only: TensorFlow and torch compile nothing to draw, and "
                           "keep Keras's draws (test_host_draws_keep_keras_semantics)")
def test_drawing_a_kernel_on_jax_compiles_nothing():
    import jax

    from kcnn.models import initializers

    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        # Shapes no other test draws, so that no compiled draw is cached.
        # (Creating a Keras variable from the values compiles a copy of its
        # own, for every initializer alike.)
        for cls in (initializers.RandomNormal, initializers.RandomUniform):
            values = keras.ops.convert_to_numpy(cls(0.0, 0.1)((3, 5, 7, 1031)))
            assert values.shape == (3, 5, 7, 1031) and values.std() > 0.02
        assert not compiles, f"{len(compiles)} XLA compilations"
        # What the test would see with Keras's draw (it works: it counts).
        keras.ops.convert_to_numpy(keras.initializers.RandomNormal()((3, 5, 7, 1033)))
        assert compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def test_host_draws_keep_keras_semantics():
    from kcnn.models import initializers

    for cls, kwargs in ((initializers.RandomNormal, dict(mean=0.5, stddev=2.0)),
                        (initializers.RandomUniform, dict(minval=-3.0, maxval=1.0))):
        keras.utils.set_random_seed(0)
        a, b = cls(**kwargs), cls(**kwargs)
        x = keras.ops.convert_to_numpy(a((300, 200)))
        assert x.dtype == np.float32 and x.shape == (300, 200)
        # An unseeded instance draws the same values on every call (as Keras's).
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a((300, 200))), x)
        assert not np.array_equal(keras.ops.convert_to_numpy(b((300, 200))), x)
        if cls is initializers.RandomNormal:
            assert x.mean() == pytest.approx(0.5, abs=0.03)
            assert x.std() == pytest.approx(2.0, rel=0.01)
        else:
            assert -3.0 <= x.min() and x.max() < 1.0
            assert x.mean() == pytest.approx(-1.0, abs=0.03)
        assert keras.ops.convert_to_numpy(a((4,), dtype="float64")).dtype == np.float64
        # Where numpy cannot draw for the backend, Keras's own draw runs.
        half = a((64,), dtype="bfloat16")
        assert keras.backend.standardize_dtype(half.dtype) == "bfloat16"
        generated = cls(**kwargs, seed=keras.random.SeedGenerator(3))
        first, second = (keras.ops.convert_to_numpy(generated((64,))) for _ in range(2))
        assert not np.array_equal(first, second)  # a SeedGenerator advances
        # The config names kcnn's class; an integer seed is kept, and so are the draws.
        seeded = cls(**kwargs, seed=11)
        restored = keras.initializers.deserialize(keras.initializers.serialize(seeded))
        assert type(restored) is cls
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored((30, 20))),
                                      keras.ops.convert_to_numpy(seeded((30, 20))))
