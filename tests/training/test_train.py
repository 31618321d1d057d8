"""kcnn.train on every backend: real data, real learning, clear refusals."""

import os

import keras
import numpy as np
import pytest

import kcnn
from kcnn.data import load_digits
from kcnn.training import SGD

BACKEND = keras.backend.backend()


def test_lenet5_reaches_97_percent_on_the_digits_with_the_default_recipe():
    history = kcnn.train("lenet5", "digits", verbose=0)
    model = history.model
    result = kcnn.evaluate(model, "digits", split="test")
    assert result["top1"] >= 0.97, result["top1"]
    assert set(result) >= {"loss", "top1", "top5", "per_class", "confusion_matrix"}
    assert result["confusion_matrix"].sum() == 360
    # The model now remembers its data: class names and per-dataset statistics.
    assert model.metadata["class_names"] == [str(i) for i in range(10)]
    assert 0.1 < model.metadata["preprocessing"]["mean"][0] < 0.5
    # The default recipe trains with AdamW that leaves 1-D variables undecayed.
    assert isinstance(model.optimizer, kcnn.optimizers.AdamW)
    assert model.optimizer.decay_1d is False


def test_a_model_overfits_a_small_batch():
    (x, y), _ = load_digits()
    x, y = x[:64], y[:64]
    model = kcnn.lenet5()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    xf = (x.astype("float32") - 50.0) / 90.0
    before = model.evaluate(xf, y, verbose=0)
    model.fit(xf, y, epochs=60, batch_size=64, verbose=0)
    after = model.evaluate(xf, y, verbose=0)
    assert after < 0.1 * before


def test_raw_uint8_arrays_are_predicted_with_training_preprocessing(tmp_path):
    (x, y), (xt, yt) = load_digits()
    history = kcnn.train("lenet5", (x, y), epochs=3, verbose=0, validation_split=0.0)
    model = history.model
    ranked = kcnn.predict(model, xt[:4], top_k=3)
    assert len(ranked) == 4 and len(ranked[0]) == 3
    assert all(isinstance(name, str) and 0 <= p <= 1 for name, p in ranked[0])
    scores = kcnn.evaluate(model, (xt, yt))
    assert scores["top1"] > 0.5


def test_alexnet2012_sgd_equals_torch_sgd_with_coupled_weight_decay():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(3)]

    variable = keras.Variable(w0)
    optimizer = SGD(learning_rate=0.01, momentum=0.9, l2=5e-4)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])

    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    reference = torch.optim.SGD([p], lr=0.01, momentum=0.9, weight_decay=5e-4)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        reference.step()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable),
                               p.detach().numpy(), rtol=0, atol=1e-7)


def test_finished_run_is_not_overwritten(tmp_path):
    (x, y), _ = load_digits()
    out = os.fspath(tmp_path / "run")
    kcnn.train("lenet5", (x[:128], y[:128]), epochs=1, out_dir=out, verbose=0)
    for name in ("model.keras", "best.keras", "log.csv", "history.json", "curves.png",
                 "confusion.png", "filters.png", "learning_rate.png"):
        assert os.path.exists(os.path.join(out, name)), name
    with pytest.raises(ValueError, match=r"out_dir=.* holds a finished run"):
        kcnn.train("lenet5", (x[:128], y[:128]), epochs=1, out_dir=out, verbose=0)
    loaded = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert loaded.metadata["class_names"] == [str(i) for i in range(10)]


@pytest.mark.parametrize("kwargs, message", [
    ({"recipe": "alexnet2013"}, r"Unknown recipe='alexnet2013'. Did you mean 'alexnet2012'"),
    ({"epochs": 0}, r"epochs must be a positive integer; received epochs=0"),
    ({"mixed_precision": "fp8"}, r"mixed_precision=.fp8."),
    ({"strategy": "everywhere"}, r"strategy must be None, 'mirrored'"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kcnn.train("lenet5", "digits", **kwargs)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="tf.distribute works on TensorFlow")
def test_a_tf_strategy_is_refused_on_other_backends():
    with pytest.raises(ValueError, match=r"works only on the TensorFlow backend"):
        kcnn.train("lenet5", "digits", strategy="mirrored")


def test_a_model_with_the_wrong_number_of_classes_is_refused():
    with pytest.raises(ValueError, match=r"has 3 outputs but the data has 10 classes"):
        kcnn.train(kcnn.lenet5(classes=3), "digits", epochs=1)


def test_mixed_precision_keeps_logits_and_lrn_in_float32():
    (x, y), _ = load_digits()
    history = kcnn.train("lenet5", (x[:256], y[:256]), epochs=2, batch_size=32,
                         mixed_precision="mixed_float16", validation_split=0.0, verbose=0)
    model = history.model
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert model.get_layer("fc3").compute_dtype == "float32"
    assert model.outputs[0].dtype == "float32"
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert keras.config.dtype_policy().name == "float32"  # only that model was mixed
    keras.config.set_dtype_policy("mixed_float16")
    paper = kcnn.alexnet(variant="paper", include_top=False, input_shape=(67, 67, 3))
    lrn = paper.get_layer("lrn1")
    out = lrn(keras.ops.full((1, 15, 15, 96), 300.0, dtype="float16"))
    assert float(keras.ops.convert_to_numpy(keras.ops.min(out))) > 1.0


def test_mixed_precision_needs_the_model_by_name():
    with pytest.raises(ValueError, match=r"mixed_precision needs the model by name"):
        kcnn.train(kcnn.lenet5(), "digits", mixed_precision="mixed_float16")


def test_recipe_colour_noise_is_only_for_rgb_models():
    from kcnn.training.recipes import RECIPES

    recipe = RECIPES["alexnet2012"]
    assert recipe.augmentation(small_grayscale=False).pca_lighting == 0.1
    gray = recipe.augmentation(small_grayscale=False, channels=1)
    assert gray.pca_lighting == 0 and gray.crop and gray.flip


def test_a_folder_with_its_own_val_split_validates_on_it(tmp_path):
    """An ImageNet-style tree (train/, val/) is trained with its own validation split,
    not refused because of the default validation_split."""
    from tests.data import make_image_folder

    make_image_folder(str(tmp_path / "train"), per_class=4, corrupt=False)
    make_image_folder(str(tmp_path / "val"), per_class=2, corrupt=False)
    history = kcnn.train("simple_cnn", str(tmp_path), epochs=1, batch_size=4, verbose=0)
    assert "val_loss" in history.history
    assert history.model.metadata["class_names"] == ["cats", "dogs", "fish"]
    with pytest.raises(ValueError, match="has a validation split of its own"):
        kcnn.data.load(str(tmp_path), validation_split=0.2)


def test_evaluate_and_predict_run_compiled_and_give_the_eager_model_s_numbers():
    (x, y), _ = load_digits()
    x, y = x[:20], y[:20]  # batches of 8: a partial last batch of 4
    model = kcnn.lenet5()
    batches = kcnn.data.eval_pipeline(kcnn.data.load((x, y)), model.metadata["preprocessing"],
                                      batch_size=8)
    eager = np.concatenate([keras.ops.convert_to_numpy(model(images.numpy(), training=False))
                            for images, _ in batches]).astype(np.float64)
    assert model.predict_function is None
    ranked = kcnn.predict(model, x, top_k=10, batch_size=8)
    assert model.predict_function is not None  # Keras's compiled predict function ran
    got = np.array([[dict(row)[str(c)] for c in range(10)] for row in ranked])
    np.testing.assert_allclose(got, eager, atol=1e-5)
    result = kcnn.evaluate(model, (x, y), batch_size=8)
    loss = -np.mean(np.log(eager[np.arange(len(y)), y] + 1e-12))
    assert result["loss"] == pytest.approx(loss, abs=1e-5)
    assert result["top1"] == np.mean(eager.argmax(axis=1) == y)
    assert result["confusion_matrix"].sum() == 20


@pytest.mark.skipif(BACKEND != "torch", reason="tf.data alone: the same on every backend, "
                    "run once on the fastest")
def test_each_epoch_s_order_depends_on_the_epoch_not_on_the_iterators_made():
    from kcnn.data.pipeline import EpochOrder

    (x, y), _ = load_digits()
    source = kcnn.data.load((x[:64], y[:64]))
    record = kcnn.lenet5().metadata["preprocessing"]

    def epochs(order, numbers):
        ds = kcnn.data.train_pipeline(source, record, batch_size=16, epoch_order=order,
                                      augment=kcnn.data.Augment(crop=False, shift=2))
        seen = []
        for epoch in numbers:
            next(iter(ds))  # an extra iterator, as Keras makes under a strategy
            order.on_epoch_begin(epoch)
            seen.append([(a.numpy(), b.numpy()) for a, b in ds])
        return seen

    straight = epochs(EpochOrder(), [0, 1, 2])
    resumed = epochs(EpochOrder(), [2])  # a run resumed at epoch 2
    for (xa, ya), (xb, yb) in zip(straight[2], resumed[0], strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)  # the same augmentation too
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(straight[0], straight[1]))
