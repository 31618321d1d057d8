"""Every mistake a user can make ends in a clear error or a reported skip, on every backend.

The table is data: one row per case, so a new argument is one new row. A row
names the call, the exception it must end in (`ValueError`, `FileNotFoundError`
or `TypeError`) and a pattern its message must contain (the argument's name, the
bad value or the bad file). A case that returned normally, or ended in any other
exception (a framework's own traceback), fails. The cases that skip and report
instead of refusing (unreadable files in a training set, a batch larger than
the data) are tested below the table with their warnings.
"""

import kcnn  # noqa: F401,I001  (first: it orders triton, keras and TensorFlow)
import os
import re
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

from kcnn import data as kdata
from kcnn import demo
from kcnn import layers as klayers
from kcnn import losses, optimizers, schedules, transfer
from kcnn import weights as kweights


class Ctx:
    """The files and model the cases use, made once per module."""


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    c = Ctx()
    root = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    c.folder = root / "images"
    for name in ("cat", "dog"):
        (c.folder / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), np.uint8)).save(
                c.folder / name / f"{i}.png")
    (c.folder / "cat" / "broken.png").write_bytes(b"this is not a png")
    c.one_class = root / "one_class"
    (c.one_class / "cat").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), np.uint8)).save(
            c.one_class / "cat" / f"{i}.png")
    c.empty = root / "empty"
    c.empty.mkdir()
    c.image = str(c.folder / "dog" / "0.png")
    c.not_image = str(root / "notimage.png")
    with open(c.not_image, "w") as f:
        f.write("plain text, not an image")
    c.missing = str(root / "missing.png")
    c.model = kcnn.lenet5(classes=2)
    c.keras_file = str(root / "model.keras")
    c.model.save(c.keras_file)
    c.truncated = str(root / "truncated.keras")
    with open(c.keras_file, "rb") as src, open(c.truncated, "wb") as dst:
        dst.write(src.read()[:300])
    c.text_keras = str(root / "text.keras")
    with open(c.text_keras, "w") as f:
        f.write("not a model")
    c.out = str(root / "out")
    c.finished = root / "finished_run"
    c.finished.mkdir()
    (c.finished / "finished.json").write_text("{}")
    c.finished = str(c.finished)
    return c


# (id, call, exception, pattern in the message)
CASES = [
    # models by name
    ("create_model unknown name", lambda c: kcnn.create_model("alexnet3"), ValueError,
     "alexnet3"),
    ("builder classes 0", lambda c: kcnn.lenet5(classes=0), ValueError, "classes"),
    ("builder classes str", lambda c: kcnn.lenet5(classes="10"), ValueError, "classes"),
    ("builder input_shape too small", lambda c: kcnn.resnet18(input_shape=(8, 8, 3)),
     ValueError, "input_shape"),
    ("builder pooling", lambda c: kcnn.resnet18(include_top=False, pooling="mean"),
     ValueError, "pooling"),
    ("builder missing weights file",
     lambda c: kcnn.lenet5(weights="missing.weights.h5"), ValueError, "missing.weights.h5"),
    # data sources
    ("load missing folder", lambda c: kdata.load(str(c.folder) + "_nope"), ValueError,
     "source"),
    ("load empty folder", lambda c: kdata.load(str(c.empty)), ValueError, "empty"),
    ("load a file", lambda c: kdata.load(c.image), ValueError, "is a file"),
    ("load bad split", lambda c: kdata.load("digits", split="dev"), ValueError, "split"),
    ("load bad channels", lambda c: kdata.load("digits", channels=2), ValueError, "channels"),
    ("load validation_split 1.5",
     lambda c: kdata.load("digits", validation_split=1.5), ValueError, "validation_split"),
    ("load verify", lambda c: kdata.load(str(c.folder), verify="full"), ValueError, "verify"),
    ("load wrong type", lambda c: kdata.load(42), ValueError, "source"),
    ("pipeline batch_size 0",
     lambda c: kdata.train_pipeline(kdata.load("digits"), c.model.metadata["preprocessing"],
                                    batch_size=0), ValueError, "batch_size"),
    # training
    ("train epochs 0", lambda c: kcnn.train("lenet5", "digits", epochs=0), ValueError, "epochs"),
    ("train batch_size -1", lambda c: kcnn.train("lenet5", "digits", batch_size=-1),
     ValueError, "batch_size"),
    ("train recipe", lambda c: kcnn.train("lenet5", "digits", recipe="alexnet2013"),
     ValueError, "recipe"),
    ("train unknown model", lambda c: kcnn.train("lenet6", "digits"), ValueError, "lenet6"),
    ("train model wrong type", lambda c: kcnn.train(3, "digits"), ValueError, "model"),
    ("train single class folder", lambda c: kcnn.train("lenet5", str(c.one_class)),
     ValueError, "single class"),
    ("train empty folder", lambda c: kcnn.train("lenet5", str(c.empty)), ValueError, "empty"),
    ("train schedule", lambda c: kcnn.train("lenet5", "digits", schedule="cosin"),
     ValueError, "schedule"),
    ("train loss", lambda c: kcnn.train("lenet5", "digits", loss="hinge"), ValueError, "loss"),
    ("train class_weight", lambda c: kcnn.train("lenet5", "digits", class_weight="auto"),
     ValueError, "class_weight"),
    ("train mixed_precision",
     lambda c: kcnn.train("lenet5", "digits", mixed_precision="float16"), ValueError,
     "mixed_precision"),
    ("train augment garbage", lambda c: kcnn.train("lenet5", "digits", augment="rotate=lots"),
     ValueError, "rotate"),
    ("train label_smoothing 1",
     lambda c: kcnn.train("lenet5", "digits", label_smoothing=1.0), ValueError,
     "label_smoothing"),
    ("train validation_data other classes",
     lambda c: kcnn.train("lenet5", str(c.folder), validation_data="digits"), ValueError,
     "validation_data"),
    # evaluation and prediction
    ("evaluate missing .keras", lambda c: kcnn.evaluate(c.out + "/nope.keras", "digits"),
     FileNotFoundError, "nope.keras"),
    ("evaluate truncated .keras", lambda c: kcnn.evaluate(c.truncated, "digits"), ValueError,
     "not a valid .keras file"),
    ("evaluate text as .keras", lambda c: kcnn.evaluate(c.text_keras, "digits"), ValueError,
     "not a valid .keras file"),
    ("evaluate model wrong type", lambda c: kcnn.evaluate(42, "digits"), ValueError, "model"),
    ("evaluate bad split", lambda c: kcnn.evaluate(c.model, str(c.folder), split="dev"),
     ValueError, "split"),
    ("predict missing file", lambda c: kcnn.predict(c.model, [c.image, c.missing]),
     FileNotFoundError, "missing.png"),
    ("predict not an image", lambda c: kcnn.predict(c.model, [c.image, c.not_image]),
     ValueError, "notimage.png"),
    ("predict top_k 0", lambda c: kcnn.predict(c.model, [c.image], top_k=0), ValueError,
     "top_k"),
    ("predict float array", lambda c: kcnn.predict(c.model, np.zeros((1, 28, 28, 1))),
     ValueError, "uint8"),
    ("predict truncated .keras", lambda c: kcnn.predict(c.truncated, [c.image]), ValueError,
     "truncated.keras"),
    # fine-tuning
    ("fine_tune missing .keras", lambda c: transfer.fine_tune(c.out + "/x.keras", str(c.folder)),
     ValueError, "x.keras"),
    ("fine_tune epochs 0", lambda c: transfer.fine_tune(c.model, str(c.folder), epochs=0),
     ValueError, "epochs"),
    ("fine_tune unfreeze", lambda c: transfer.fine_tune(c.model, str(c.folder), unfreeze="some"),
     ValueError, "unfreeze"),
    ("fine_tune single class",
     lambda c: transfer.fine_tune(c.model, str(c.one_class), epochs=1), ValueError,
     "single class"),
    # menu pieces
    ("schedule unknown", lambda c: schedules.create("cosin"), ValueError, "cosin"),
    ("schedule step_size 0", lambda c: schedules.create("step", step_size=0), ValueError,
     "step_size"),
    ("loss unknown", lambda c: losses.create("hinge"), ValueError, "hinge"),
    ("decode_predictions top 0",
     lambda c: kcnn.decode_predictions(np.zeros((1, 1000)), top=0), ValueError, "top"),
    ("decode_predictions shape",
     lambda c: kcnn.decode_predictions(np.zeros((1, 10))), ValueError, "1000"),
    # export and inspection
    ("export format", lambda c: kcnn.export(c.model, c.out + "/m", format="tflite2"),
     ValueError, "format"),
    ("export top_k", lambda c: kcnn.export(c.model, c.out + "/m", top_k=0), ValueError, "top_k"),
    ("profile unknown name", lambda c: kcnn.profile("vgg17"), ValueError, "vgg17"),
    ("gradcam batch_size", lambda c: kcnn.gradcam(
        c.model, np.zeros((1, 28, 28, 1), np.float32), batch_size=0), ValueError, "batch_size"),
    ("gradcam wrong shape", lambda c: kcnn.gradcam(c.model, np.zeros((1, 5, 5, 1), np.float32)),
     ValueError, "images"),
    ("feature_maps unknown layer", lambda c: kcnn.feature_maps(
        c.model, np.zeros((1, 28, 28, 1), np.float32), ["conv9"]), ValueError, "conv9"),
    ("tta mode", lambda c: kcnn.tta(c.model, mode="spin"), ValueError, "mode"),
    ("ensemble empty", lambda c: kcnn.ensemble([]), ValueError, "models"),
    ("replace_classifier classes 0",
     lambda c: transfer.replace_classifier(c.model, 0), ValueError, "classes"),
    # more arguments of the same functions
    ("builder classifier_activation", lambda c: kcnn.lenet5(classifier_activation="softmax2"),
     ValueError, "classifier_activation"),
    ("builder imagenet weights with 10 classes",
     lambda c: kcnn.resnet18(weights="imagenet", classes=10), ValueError, "classes"),
    ("builder init", lambda c: kcnn.resnet18(init="paper"), ValueError, "init"),
    ("mobilenet width_mult 0", lambda c: kcnn.mobilenet_v2(width_mult=0), ValueError,
     "width_mult"),
    ("load class_names for a folder",
     lambda c: kdata.load(str(c.folder), class_names=["a", "b"]), ValueError, "class_names"),
    ("load arrays of the wrong rank",
     lambda c: kdata.load((np.zeros((4, 5)), np.zeros(4, int))), ValueError, "x must have shape"),
    ("load arrays of different lengths",
     lambda c: kdata.load((np.zeros((4, 5, 5)), np.zeros(3, int))), ValueError, "same length"),
    ("load negative labels",
     lambda c: kdata.load((np.zeros((4, 5, 5)), -np.ones(4, int))), ValueError, "labels"),
    ("load unknown tfds name", lambda c: kdata.load("mnist_typo_xyz"), ValueError, "source"),
    ("pipeline shuffle_buffer 0",
     lambda c: kdata.train_pipeline(kdata.load("digits"), c.model.metadata["preprocessing"],
                                    batch_size=8, shuffle_buffer=0), ValueError,
     "shuffle_buffer"),
    ("pipeline preprocessing without crop",
     lambda c: kdata.eval_pipeline(kdata.load("digits"), {"mean": [0.5]}, batch_size=8),
     ValueError, "crop"),
    ("preview path not png",
     lambda c: kdata.preview("digits", c.out + "/grid.jpg"), ValueError, "path"),
    ("train clipnorm", lambda c: kcnn.train("lenet5", "digits", clipnorm=-1.0), ValueError,
     "clipnorm"),
    ("train gradient_accumulation_steps",
     lambda c: kcnn.train("lenet5", "digits", gradient_accumulation_steps=0), ValueError,
     "gradient_accumulation_steps"),
    ("train strategy", lambda c: kcnn.train("lenet5", "digits", strategy="ring"), ValueError,
     "strategy"),
    ("train init on a built model", lambda c: kcnn.train(c.model, "digits", init="keras"),
     ValueError, "init"),
    ("train validation_split 2", lambda c: kcnn.train("lenet5", "digits", validation_split=2.0),
     ValueError, "validation_split"),
    ("train model with other classes", lambda c: kcnn.train(kcnn.lenet5(classes=3), "digits"),
     ValueError, "classes"),
    ("train into a finished run", lambda c: kcnn.train(
        "lenet5", "digits", out_dir=c.finished, epochs=1), ValueError, "overwrite"),
    ("evaluate batch_size 0", lambda c: kcnn.evaluate(c.model, "digits", batch_size=0),
     ValueError, "batch_size"),
    ("predict batch_size 0", lambda c: kcnn.predict(c.model, [c.image], batch_size=0),
     ValueError, "batch_size"),
    ("fine_tune batch_size 0", lambda c: transfer.fine_tune(c.model, str(c.folder),
                                                           batch_size=0), ValueError, "batch_size"),
    ("fine_tune every 0", lambda c: transfer.fine_tune(c.model, str(c.folder), every=0),
     ValueError, "every"),
    ("fine_tune augment", lambda c: transfer.fine_tune(c.model, str(c.folder), augment="flip"),
     ValueError, "augment"),
    ("tune tuner", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                       tuner="grid"), ValueError, "tuner"),
    ("tune max_trials 0", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                              max_trials=0), ValueError, "max_trials"),
    ("tune space", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                       space={"momentum": (0.8, 0.99)}), ValueError, "momentum"),
    ("tune single class", lambda c: kcnn.tune("lenet5", str(c.one_class),
                                              directory=c.out + "/t1", max_trials=1, epochs=1),
     ValueError, "single class"),
    ("export onto an existing path",
     lambda c: kcnn.export(c.model, c.keras_file, format="keras"), ValueError, "overwrite"),
    ("export keras format without .keras",
     lambda c: kcnn.export(c.model, c.out + "/m.h5", format="keras"), ValueError, ".keras"),
    ("profile input_shape", lambda c: kcnn.profile(c.model, input_shape=(3, 3)), ValueError,
     "input_shape"),
    ("gradcam unknown layer", lambda c: kcnn.gradcam(
        c.model, np.zeros((1, 28, 28, 1), np.float32), layer="conv9"), ValueError, "conv9"),
    ("gradcam class_index out of range", lambda c: kcnn.gradcam(
        c.model, np.zeros((1, 28, 28, 1), np.float32), class_index=7), ValueError,
     "class_index"),
    ("feature_maps max_channels 0", lambda c: kcnn.feature_maps(
        c.model, np.zeros((1, 28, 28, 1), np.float32), ["conv1"], max_channels=0),
     ValueError, "max_channels"),
    ("tta ten_crop without input_size on a fixed model", lambda c: kcnn.tta(
        c.model, mode="flip", input_size=(20, 20)), ValueError, "input_size"),
    ("ensemble of one", lambda c: kcnn.ensemble([c.model]), ValueError, "models"),
    ("ensemble of different inputs",
     lambda c: kcnn.ensemble([c.model, kcnn.simple_cnn(classes=2, input_shape=(32, 32, 1))]),
     ValueError, "input"),
    ("preprocess_input data_format",
     lambda c: kcnn.preprocess_input(np.zeros((1, 8, 8, 3)), data_format="nhwc"), ValueError,
     "data_format"),
    ("schedule multistep milestones",
     lambda c: schedules.create("multistep", milestones=[5, 2]), ValueError, "milestones"),
    ("schedule onecycle pct_start", lambda c: schedules.create(
        "onecycle", max_lr=0.1, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    ("loss focal gamma nan", lambda c: losses.create("focal", gamma=float("nan")),
     ValueError, "gamma"),
    ("augment unknown option", lambda c: kdata.augment.resolve("rotation=15 swirl=2"),
     ValueError, "swirl"),
    # a .keras path wherever a model goes: a broken or missing file is named as such
    ("gradcam truncated .keras", lambda c: kcnn.gradcam(
        c.truncated, np.zeros((1, 28, 28, 1), np.float32)), ValueError, "not a valid .keras"),
    ("feature_maps missing .keras", lambda c: kcnn.feature_maps(
        c.out + "/gone.keras", np.zeros((1, 28, 28, 1), np.float32), ["conv1"]),
     FileNotFoundError, "gone.keras"),
    ("profile text as .keras", lambda c: kcnn.profile(c.text_keras), ValueError,
     "not a valid .keras"),
    ("export truncated .keras", lambda c: kcnn.export(c.truncated, c.out + "/m"), ValueError,
     "not a valid .keras"),
    ("tta missing .keras", lambda c: kcnn.tta(c.out + "/gone.keras"), FileNotFoundError,
     "gone.keras"),
    ("ensemble broken member", lambda c: kcnn.ensemble([c.keras_file, c.truncated]),
     ValueError, r"models\[1\]"),
    ("replace_classifier truncated .keras",
     lambda c: transfer.replace_classifier(c.truncated, 3), ValueError, "not a valid .keras"),
    ("train truncated .keras", lambda c: kcnn.train(c.truncated, "digits"), ValueError,
     "not a valid .keras"),
    ("fine_tune text as .keras", lambda c: transfer.fine_tune(c.text_keras, str(c.folder)),
     ValueError, "not a valid .keras"),
    # ---- every argument: rows added for the remaining arguments (issue 27, item 4)
    # builders (one signature for every family)
    ("builder include_top str", lambda c: kcnn.lenet5(include_top="yes"), ValueError,
     "include_top"),
    ("builder weights wrong type", lambda c: kcnn.lenet5(weights=42), ValueError, "weights"),
    ("builder unknown weights tag", lambda c: kcnn.resnet18(weights="imagenet21k"), ValueError,
     "imagenet21k"),
    ("builder input_tensor not a tensor",
     lambda c: kcnn.lenet5(input_tensor=np.zeros((1, 28, 28, 1))), ValueError, "input_tensor"),
    ("builder input_shape wrong type", lambda c: kcnn.lenet5(input_shape="28x28"), ValueError,
     "input_shape"),
    ("builder name wrong type", lambda c: kcnn.lenet5(name=42), ValueError, "name"),
    ("builder dropout 1.5", lambda c: kcnn.vgg11(dropout=1.5), ValueError, "dropout"),
    ("simple_cnn dropout pair", lambda c: kcnn.simple_cnn(dropout=(0.5,)), ValueError,
     "dropout"),
    ("alexnet variant", lambda c: kcnn.alexnet(variant="caffe2"), ValueError, "variant"),
    ("alexnet groups 3", lambda c: kcnn.alexnet(groups=3), ValueError, "groups"),
    ("googlenet aux_logits str", lambda c: kcnn.googlenet(aux_logits="yes"), ValueError,
     "aux_logits"),
    ("googlenet dropout_aux 2", lambda c: kcnn.googlenet(dropout_aux=2.0), ValueError,
     "dropout_aux"),
    ("efficientnet stochastic_depth_prob 1.5",
     lambda c: kcnn.efficientnet_b0(stochastic_depth_prob=1.5), ValueError,
     "stochastic_depth_prob"),
    ("create_model name wrong type", lambda c: kcnn.create_model(42), ValueError, "name"),
    ("create_model unknown argument", lambda c: kcnn.create_model("lenet5", colour=True),
     TypeError, "colour"),
    ("list_models pattern wrong type", lambda c: kcnn.list_models(42), ValueError, "pattern"),
    # train: the arguments not above
    ("train data missing folder", lambda c: kcnn.train("lenet5", str(c.empty) + "/nope"),
     ValueError, "nope"),
    ("train data wrong type", lambda c: kcnn.train("lenet5", 42), ValueError, "source"),
    ("train validation_data missing folder", lambda c: kcnn.train(
        "lenet5", "digits", validation_data=str(c.empty) + "/nope"), ValueError, "nope"),
    ("train out_dir is a file", lambda c: kcnn.train("lenet5", "digits", out_dir=c.image,
                                                    epochs=1), ValueError, "out_dir"),
    ("train overwrite str", lambda c: kcnn.train(
        "lenet5", str(c.folder), overwrite="yes", epochs=1, batch_size=4,
        validation_split=None, verbose=0), ValueError, "overwrite"),
    ("train learning_rate 0", lambda c: kcnn.train("lenet5", "digits", learning_rate=0.0),
     ValueError, "learning_rate"),
    ("train learning_rate str", lambda c: kcnn.train("lenet5", "digits", learning_rate="fast"),
     ValueError, "learning_rate"),
    ("train callbacks not callbacks",
     lambda c: kcnn.train("lenet5", "digits", callbacks=["early_stopping"]), ValueError,
     "callbacks"),
    ("train seed str", lambda c: kcnn.train("lenet5", "digits", seed="x"), ValueError, "seed"),
    ("train verbose", lambda c: kcnn.train("lenet5", str(c.folder), verbose="loud", epochs=1,
                                           batch_size=4, validation_split=None), ValueError,
     "verbose"),
    # evaluate and predict
    ("evaluate data missing folder",
     lambda c: kcnn.evaluate(c.model, str(c.empty) + "/nope"), ValueError, "nope"),
    ("evaluate ten_crop str", lambda c: kcnn.evaluate(c.model, str(c.folder), ten_crop="yes"),
     ValueError, "ten_crop"),
    ("predict no images", lambda c: kcnn.predict(c.model, []), ValueError, "images"),
    ("predict images wrong type", lambda c: kcnn.predict(c.model, 42), ValueError, "images"),
    ("predict model wrong type", lambda c: kcnn.predict(42, [c.image]), ValueError, "model"),
    ("predict top_k str", lambda c: kcnn.predict(c.model, [c.image], top_k="5"), ValueError,
     "top_k"),
    # tune
    ("tune directory wrong type", lambda c: kcnn.tune("lenet5", "digits", directory=42),
     ValueError, "directory"),
    ("tune epochs 0", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                          epochs=0), ValueError, "epochs"),
    ("tune max_epochs 0", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                              tuner="hyperband", max_epochs=0), ValueError,
     "max_epochs"),
    ("tune factor 1", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                          tuner="hyperband", factor=1), ValueError, "factor"),
    ("tune recipe", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                        recipe="alexnet2013"), ValueError, "recipe"),
    ("tune batch_size 0", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                              batch_size=0), ValueError, "batch_size"),
    ("tune image_size 0", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                              image_size=0), ValueError, "image_size"),
    ("tune validation_split 0", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                                    validation_split=0), ValueError,
     "validation_split"),
    ("tune strategy", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                          strategy="ring"), ValueError, "strategy"),
    ("tune mixed_precision", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                                 mixed_precision="float16"), ValueError,
     "mixed_precision"),
    ("tune final_epochs 0", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                                final_epochs=0), ValueError, "final_epochs"),
    ("tune model unknown", lambda c: kcnn.tune("lenet6", "digits", directory=c.out + "/t"),
     ValueError, "lenet6"),
    ("tune data missing folder", lambda c: kcnn.tune("lenet5", str(c.empty) + "/nope",
                                                     directory=c.out + "/t"), ValueError,
     "nope"),
    ("tune seed str", lambda c: kcnn.tune("lenet5", "digits", directory=c.out + "/t",
                                          seed="x"), ValueError, "seed"),
    # export
    ("export path wrong type", lambda c: kcnn.export(c.model, 42), ValueError, "path"),
    ("export model wrong type", lambda c: kcnn.export(42, c.out + "/m"), ValueError, "model"),
    ("export overwrite str", lambda c: kcnn.export(c.model, c.out + "/m", overwrite="yes"),
     ValueError, "overwrite"),
    # fine_tune: the arguments not above
    ("fine_tune learning_rate -1", lambda c: transfer.fine_tune(
        c.model, str(c.folder), learning_rate=-1.0), ValueError, "learning_rate"),
    ("fine_tune backbone negative", lambda c: transfer.fine_tune(
        c.model, str(c.folder), backbone=-0.5), ValueError, "backbone"),
    ("fine_tune decay 0", lambda c: transfer.fine_tune(c.model, str(c.folder), decay=0.0),
     ValueError, "decay"),
    ("fine_tune optimizer", lambda c: transfer.fine_tune(c.model, str(c.folder),
                                                         optimizer="adamx"), ValueError,
     "optimizer"),
    ("fine_tune dropout 1.5", lambda c: transfer.fine_tune(c.model, str(c.folder), dropout=1.5),
     ValueError, "dropout"),
    ("fine_tune hidden 0", lambda c: transfer.fine_tune(c.model, str(c.folder), hidden=0),
     ValueError, "hidden"),
    ("fine_tune features unknown layer", lambda c: transfer.fine_tune(
        c.model, str(c.folder), features="conv9"), ValueError, "conv9"),
    ("fine_tune validation_split 1.5", lambda c: transfer.fine_tune(
        c.model, str(c.folder), validation_split=1.5), ValueError, "validation_split"),
    ("fine_tune validation_data other classes", lambda c: transfer.fine_tune(
        c.model, str(c.folder), validation_data="digits"), ValueError, "validation_data"),
    ("fine_tune data missing folder", lambda c: transfer.fine_tune(
        c.model, str(c.empty) + "/nope"), ValueError, "nope"),
    ("fine_tune seed str", lambda c: transfer.fine_tune(c.model, str(c.folder), seed="x"),
     ValueError, "seed"),
    # inspection and ensembles
    ("explain missing image", lambda c: kcnn.inspect.explain(c.model, [c.missing], c.out),
     FileNotFoundError, "missing.png"),
    ("explain not an image", lambda c: kcnn.inspect.explain(c.model, [c.not_image], c.out),
     ValueError, "notimage.png"),
    ("explain alpha 2", lambda c: kcnn.inspect.explain(c.model, [c.image], c.out, alpha=2.0),
     ValueError, "alpha"),
    ("explain out_dir is a file", lambda c: kcnn.inspect.explain(c.model, [c.image], c.image),
     ValueError, "out_dir"),
    ("explain layer", lambda c: kcnn.inspect.explain(c.model, [c.image], c.out, layer="conv9"),
     ValueError, "conv9"),
    ("explain class_index", lambda c: kcnn.inspect.explain(c.model, [c.image], c.out,
                                                           class_index=5), ValueError,
     "class_index"),
    ("feature_maps no layers", lambda c: kcnn.feature_maps(
        c.model, np.zeros((1, 28, 28, 1), np.float32), []), ValueError, "layers"),
    ("feature_maps image_index out of range", lambda c: kcnn.feature_maps(
        c.model, np.zeros((1, 28, 28, 1), np.float32), ["conv1"], path=c.out + "/f.png",
        image_index=3), ValueError,
     "image_index"),
    ("feature_maps batch_size 0", lambda c: kcnn.feature_maps(
        c.model, np.zeros((1, 28, 28, 1), np.float32), ["conv1"], batch_size=0), ValueError,
     "batch_size"),
    ("feature_maps wrong shape", lambda c: kcnn.feature_maps(
        c.model, np.zeros((1, 5, 5, 1), np.float32), ["conv1"]), ValueError, "images"),
    ("feature_maps path not png", lambda c: kcnn.feature_maps(
        c.model, np.zeros((1, 28, 28, 1), np.float32), ["conv1"], path=c.out + "/f.txt"),
     ValueError, "path"),
    ("gradcam model wrong type", lambda c: kcnn.gradcam(
        42, np.zeros((1, 28, 28, 1), np.float32)), ValueError, "model"),
    ("profile wrong type", lambda c: kcnn.profile(42), ValueError, "model"),
    ("tta model wrong type", lambda c: kcnn.tta(42), ValueError, "model"),
    ("tta name wrong type", lambda c: kcnn.tta(c.model, name=42), ValueError, "name"),
    ("ensemble not a list", lambda c: kcnn.ensemble(c.model), ValueError, "models"),
    ("ensemble name wrong type", lambda c: kcnn.ensemble([c.model, c.model], name=42),
     ValueError, "name"),
    ("decode_predictions wrong type", lambda c: kcnn.decode_predictions("cat"), ValueError,
     "1000"),
    ("preprocess_input preprocessing", lambda c: kcnn.preprocess_input(
        np.zeros((1, 8, 8, 3)), preprocessing=42), ValueError, "preprocessing"),
    ("preprocess_input wrong rank", lambda c: kcnn.preprocess_input(np.zeros((8,))),
     ValueError, "x"),
    # data: the arguments not above
    ("load seed str", lambda c: kdata.load("digits", validation_split=0.2, seed="x"),
     ValueError, "seed"),
    ("load download false", lambda c: kdata.load("mnist", data_dir=c.out + "/tfds",
                                                 download=False), ValueError, "mnist"),
    ("load_with_validation validation_data wrong type",
     lambda c: kdata.load_with_validation("digits", validation_data=42), ValueError, "source"),
    ("load_with_validation required", lambda c: kdata.load_with_validation(
        "digits", validation_split=None, required=True), ValueError, "validation"),
    ("load_digits size 0", lambda c: kdata.load_digits(size=0), ValueError, "size"),
    ("load_digits test_fraction 1.5", lambda c: kdata.load_digits(test_fraction=1.5),
     ValueError, "test_fraction"),
    ("mean_std max_examples 0", lambda c: kdata.mean_std(kdata.load("digits"), max_examples=0),
     ValueError, "max_examples"),
    ("mean_std data wrong type", lambda c: kdata.mean_std("digits"), ValueError, "data"),
    ("class_counts data wrong type", lambda c: kdata.class_counts(42), ValueError, "data"),
    ("pipeline augment wrong type", lambda c: kdata.train_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8, augment="flip"),
     ValueError, "augment"),
    ("pipeline seed str", lambda c: kdata.train_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8, seed="x"),
     ValueError, "seed"),
    ("pipeline cache wrong type", lambda c: kdata.train_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8, cache=42),
     ValueError, "cache"),
    ("pipeline channels 2", lambda c: kdata.train_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8, channels=2),
     ValueError, "channels"),
    ("pipeline mixup without one_hot", lambda c: kdata.train_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8,
        augment=kdata.Augment(mixup=0.2)), ValueError, "one_hot"),
    ("pipeline num_classes too few", lambda c: kdata.train_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8, one_hot=True,
        num_classes=2), ValueError, "num_classes"),
    ("pipeline class_weight", lambda c: kdata.train_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8,
        class_weight={0: -1.0}), ValueError, "class_weight"),
    ("pipeline data wrong type", lambda c: kdata.train_pipeline(
        "digits", c.model.metadata["preprocessing"], batch_size=8), ValueError, "data"),
    ("eval_pipeline batch_size 0", lambda c: kdata.eval_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=0), ValueError,
     "batch_size"),
    ("eval_pipeline cache wrong type", lambda c: kdata.eval_pipeline(
        kdata.load("digits"), c.model.metadata["preprocessing"], batch_size=8, cache=42),
     ValueError, "cache"),
    ("preview n 0", lambda c: kdata.preview("digits", c.out + "/g.png", n=0), ValueError, "n"),
    ("preview augment garbage", lambda c: kdata.preview("digits", c.out + "/g.png",
                                                        augment="rotation=lots"), ValueError,
     "rotation"),
    ("preview preprocessing", lambda c: kdata.preview("digits", c.out + "/g.png",
                                                      preprocessing={"mean": [0.5]}),
     ValueError, "preprocessing"),
    ("preview data missing folder", lambda c: kdata.preview(str(c.empty) + "/nope",
                                                            c.out + "/g.png"), ValueError,
     "nope"),
    ("Augment rotation negative", lambda c: kdata.Augment(rotation=-5), ValueError, "rotation"),
    ("Augment pca_lighting negative", lambda c: kdata.Augment(pca_lighting=-0.1), ValueError,
     "pca_lighting"),
    ("Augment erasing 2", lambda c: kdata.Augment(erasing=2.0), ValueError, "erasing"),
    ("Augment interpolation", lambda c: kdata.Augment(interpolation="cubic"), ValueError,
     "interpolation"),
    # schedules, losses, optimizers
    ("schedule name wrong type", lambda c: schedules.create(42), ValueError, "name"),
    ("schedule unknown argument", lambda c: schedules.create("cosine", warmup=3), ValueError,
     "warmup"),
    ("schedule rates steps 0", lambda c: schedules.rates(schedules.create(
        "step", step_size=2), 0), ValueError, "steps"),
    ("loss label_smoothing 1.5", lambda c: losses.create(label_smoothing=1.5), ValueError,
     "label_smoothing"),
    ("loss focal alpha str", lambda c: losses.create("focal", alpha="high"), ValueError,
     "alpha"),
    ("loss class_weight", lambda c: losses.class_weight("auto", [3, 4]), ValueError,
     "class_weight"),
    ("SGD learning_rate -1", lambda c: optimizers.SGD(learning_rate=-1.0), ValueError,
     "learning_rate"),
    ("SGD momentum 2", lambda c: optimizers.SGD(momentum=2.0), ValueError, "momentum"),
    ("SGD l2 negative", lambda c: optimizers.SGD(l2=-1.0), ValueError, "l2"),
    ("recipe unknown", lambda c: kcnn.training.get_recipe("alexnet2013"), ValueError, "recipe"),
    # transfer's building blocks
    ("replace_classifier dropout 1.5", lambda c: transfer.replace_classifier(
        c.model, 3, dropout=1.5), ValueError, "dropout"),
    ("replace_classifier hidden str", lambda c: transfer.replace_classifier(
        c.model, 3, hidden="big"), ValueError, "hidden"),
    ("replace_classifier features", lambda c: transfer.replace_classifier(
        c.model, 3, features="conv9"), ValueError, "conv9"),
    ("replace_classifier classifier_activation", lambda c: transfer.replace_classifier(
        c.model, 3, classifier_activation="softmax2"), ValueError, "classifier_activation"),
    ("freeze up_to unknown", lambda c: transfer.freeze(kcnn.lenet5(classes=2), up_to="conv9"),
     ValueError, "conv9"),
    ("unfreeze last -1", lambda c: transfer.unfreeze(kcnn.lenet5(classes=2), last=-1),
     ValueError, "last"),
    ("set_trainable stages 99", lambda c: transfer.set_trainable(kcnn.lenet5(classes=2), 99),
     ValueError, "trainable_stages"),
    ("gradual_schedule epochs 0", lambda c: transfer.gradual_schedule(c.model, 0), ValueError,
     "epochs"),
    ("gradual_schedule every 0", lambda c: transfer.gradual_schedule(c.model, 3, every=0),
     ValueError, "every"),
    ("discriminative_optimizer optimizer", lambda c: transfer.discriminative_optimizer(
        c.model, "adamx"), ValueError, "optimizer"),
    ("discriminative_optimizer backbone -1", lambda c: transfer.discriminative_optimizer(
        c.model, backbone=-1.0), ValueError, "backbone"),
    ("stages wrong type", lambda c: transfer.stages(42), ValueError, "model"),
    # tuning's pieces
    ("parse_space garbage", lambda c: kcnn.tuning.parse_space(["learning_rate=lots"]),
     ValueError, "learning_rate"),
    ("search_space unknown", lambda c: kcnn.tuning.search_space({"colour": [1, 2]}),
     ValueError, "colour"),
    # weights
    ("get_weights unknown model", lambda c: kweights.get_weights("lenet9"), ValueError,
     "lenet9"),
    ("get_weights unknown tag", lambda c: kweights.get_weights("resnet18", "IMAGENET9K"),
     ValueError, "IMAGENET9K"),
    ("read_pth missing", lambda c: kweights.read_pth(c.out + "/x.pth"), ValueError, "x.pth"),
    ("read_pth not a checkpoint", lambda c: kweights.read_pth(c.not_image), ValueError,
     "notimage.png"),
    ("load_pth missing", lambda c: kweights.load_pth(kcnn.lenet5(), c.out + "/x.pth"),
     ValueError, "x.pth"),
    ("load_state_dict unknown keys", lambda c: kweights.load_state_dict(
        kcnn.lenet5(), {"fc9.weight": np.zeros((2, 2))}), ValueError, "fc9"),
    ("load_state_dict wrong type", lambda c: kweights.load_state_dict(kcnn.lenet5(), 42),
     ValueError, "state_dict"),
    ("weights register bad sha256", lambda c: kweights.register(
        "resnet18", "MINE", "https://example.com/r.pth", "abc"), ValueError, "sha256"),
    ("weights register unknown model", lambda c: kweights.register(
        "lenet9", "MINE", "https://example.com/r.pth", "0" * 64), ValueError, "lenet9"),
    ("weights unregister unknown", lambda c: kweights.unregister("resnet18", "MINE2"),
     ValueError, "MINE2"),
    ("list_weights wrong type", lambda c: kweights.list_weights(42), ValueError, "pattern"),
    # layers
    ("LRN size 0", lambda c: klayers.LocalResponseNormalization(size=0), ValueError, "size"),
    ("LRN beta negative", lambda c: klayers.LocalResponseNormalization(beta=-1.0), ValueError,
     "beta"),
    ("GroupedConv2D groups not a divisor", lambda c: klayers.GroupedConv2D(10, 3, groups=3)(
        np.zeros((1, 8, 8, 4), np.float32)), ValueError, "groups"),
    ("AdaptiveAveragePooling2D output_size 0",
     lambda c: klayers.AdaptiveAveragePooling2D(0), ValueError, "output_size"),
    ("TorchMaxPooling2D pool_size 0", lambda c: klayers.TorchMaxPooling2D(0), ValueError,
     "pool_size"),
    ("StochasticDepth rate 1.5", lambda c: klayers.StochasticDepth(1.5), ValueError, "rate"),
    ("StochasticDepth mode", lambda c: klayers.StochasticDepth(0.1, mode="column"), ValueError,
     "mode"),
    ("demo epochs 0", lambda c: demo.digits(epochs=0, out=c.out), ValueError, "epochs"),
]


# Rows whose call still ends badly, each with the change it waits for in a module
# this test does not own. Strict: once fixed, the row passes, the xfail turns red,
# and the entry is deleted here.
GAPS = {}  # row id: the fix it needs (a strict expected failure until made)


def _rows(cases):
    return [pytest.param(*row[1:], id=row[0], marks=pytest.mark.xfail(
        strict=True, reason=GAPS[row[0]])) if row[0] in GAPS else
        pytest.param(*row[1:], id=row[0]) for row in cases]


@pytest.mark.parametrize("call, error, pattern", _rows(CASES))
def test_bad_input_ends_in_a_clear_error(ctx, call, error, pattern):
    with pytest.raises(error, match=pattern):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a skip report may come before the error
            call(ctx)


def test_the_table_names_only_the_exceptions_users_are_promised():
    assert {row[2] for row in CASES} <= {ValueError, FileNotFoundError, TypeError}
    assert len({row[0] for row in CASES}) == len(CASES)
    assert set(GAPS) <= {row[0] for row in CASES}
    assert set(CLI_GAPS) <= {row[0] for row in CLI_CASES}
    assert len({row[0] for row in CLI_CASES}) == len(CLI_CASES)


# ----------------------------------------------------------------------------
# Skip and report, or shrink the batch with a warning


def test_a_corrupt_file_in_a_training_folder_is_skipped_and_named(ctx):
    with pytest.warns(UserWarning, match="broken.png"):
        source = kdata.load(str(ctx.folder))
    assert source.num_examples == 12


@pytest.fixture(scope="module")
def cut_files(tmp_path_factory):
    """A folder with whole images and a PNG and a JPEG cut in half."""
    folder = tmp_path_factory.mktemp("cut")
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        (folder / name).mkdir()
        for ext in ("png", "jpg"):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), np.uint8)).save(
                folder / name / f"0.{ext}")
    for ext in ("png", "jpg"):
        whole = (folder / "a" / f"0.{ext}").read_bytes()
        (folder / "a" / f"cut.{ext}").write_bytes(whole[:len(whole) // 2])
    return folder


def test_header_mode_names_a_png_and_a_jpeg_cut_short(cut_files):
    with pytest.warns(UserWarning, match=r"(?s)cut\.jpg.*cut\.png"):
        source = kdata.load(str(cut_files), verify="header")
    assert source.num_examples == 4


def test_unchecked_folders_name_each_bad_file_when_tf_data_skips_it(ctx, cut_files):
    for folder, bad, whole in ((ctx.folder, ["broken.png"], 12),
                               (cut_files, ["cut.png", "cut.jpg"], 4)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            source = kdata.load(str(folder), verify=None)
            assert len([int(label) for _, label in source.dataset]) == whole
        named = " ".join(str(w.message) for w in caught)
        assert all(name in named for name in bad), named


def test_a_training_set_smaller_than_a_batch_trains_with_the_batch_that_fits(ctx):
    with pytest.warns(UserWarning, match=r"has 1[01] examples, fewer than batch_size=32: "
                      r"using batch size 1[01]"):
        history = kcnn.train("lenet5", str(ctx.folder), epochs=1, batch_size=32,
                             validation_split=0.1, verbose=0)
    assert history.params["steps"] == 1
    assert len(history.history["loss"]) == 1


def test_fine_tune_says_when_it_shrinks_its_batch(ctx):
    with pytest.warns(UserWarning, match=r"fewer than batch_size=64"):
        history = transfer.fine_tune(ctx.keras_file, str(ctx.folder), epochs=1, batch_size=64,
                                     validation_split=None, verbose=0)
    assert history.history["loss"]


@pytest.mark.parametrize("examples, batch, replicas, expected", [
    (100, 32, 1, 32), (20, 32, 1, 20), (20, 32, 8, 16), (7, 32, 4, 4), (32, 32, 2, 32)])
def test_the_batch_that_fits_is_a_multiple_of_the_replicas(examples, batch, replicas, expected):
    from kcnn.training.setup import batch_that_fits

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert batch_that_fits(batch, examples, replicas) == expected
    assert bool(caught) == (expected != batch)
    if caught:
        assert f"{examples} examples" in str(caught[0].message)
        assert f"batch_size={batch}" in str(caught[0].message)


def test_fewer_examples_than_replicas_is_refused_with_the_numbers():
    from kcnn.training.setup import batch_that_fits

    with pytest.raises(ValueError, match=r"has 3 examples, fewer than the 4 replicas"):
        batch_that_fits(32, 3, 4, data="the training data")


def test_a_keras_path_works_wherever_a_model_does(ctx):
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(ctx.model(x))
    assert len(kcnn.predict(ctx.keras_file, [ctx.image], top_k=2)[0]) == 2
    assert 0.0 <= kcnn.evaluate(ctx.keras_file, str(ctx.folder), split="train")["top1"] <= 1
    assert kcnn.gradcam(ctx.keras_file, x).shape == (2, 28, 28)
    assert set(kcnn.feature_maps(ctx.keras_file, x, ["conv1"])) == {"conv1"}
    assert kcnn.profile(ctx.keras_file).params == ctx.model.count_params()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(kcnn.ensemble([ctx.keras_file, ctx.model])(x)),
        expected, atol=1e-5)
    assert kcnn.tta(ctx.keras_file).count_params() == ctx.model.count_params()
    assert transfer.replace_classifier(ctx.keras_file, 3).outputs[0].shape[-1] == 3
    assert os.path.isfile(ctx.keras_file)  # read, never moved or rewritten


# ----------------------------------------------------------------------------
# The command line: exit code 2 and one line on stderr naming the argument

CLI_CASES = [
    ("train unknown model", lambda c: ["train", "lenet6"], "lenet6"),
    ("train epochs 0", lambda c: ["train", "lenet5", "--epochs", "0"], "epochs"),
    ("train empty folder", lambda c: ["train", "lenet5", "--data", str(c.empty),
                                      "--out", c.out], "empty"),
    ("train single class", lambda c: ["train", "lenet5", "--data", str(c.one_class),
                                      "--out", c.out], "single class"),
    ("evaluate missing model", lambda c: ["evaluate", c.out + "/nope.keras"], "nope.keras"),
    ("evaluate truncated model", lambda c: ["evaluate", c.truncated], "not a valid .keras"),
    ("predict not an image", lambda c: ["predict", c.keras_file, c.not_image],
     "notimage.png"),
    ("predict missing image", lambda c: ["predict", c.keras_file, c.missing], "missing.png"),
    ("predict top-k 0", lambda c: ["predict", c.keras_file, c.image, "--top-k", "0"],
     "top_k"),
    ("summary unknown model", lambda c: ["summary", "vgg17"], "vgg17"),
    ("export format", lambda c: ["export", c.keras_file, c.out + "/m", "--format", "tflite2"],
     "format"),
    ("export truncated", lambda c: ["export", c.truncated, c.out + "/m"],
     "not a valid .keras"),
    ("explain text model", lambda c: ["explain", c.text_keras, c.image, "--out", c.out],
     "not a valid .keras"),
    ("finetune missing model", lambda c: ["finetune", c.out + "/x.keras", "--data",
                                          str(c.folder), "--out", c.out], "x.keras"),
    ("finetune single class", lambda c: ["finetune", c.keras_file, "--data", str(c.one_class),
                                         "--out", c.out], "single class"),
    ("tune single class", lambda c: ["tune", "lenet5", "--data", str(c.one_class),
                                     "--out", c.out + "/tune"], "single class"),
    ("tune hyperband max-trials", lambda c: ["tune", "lenet5", "--tuner", "hyperband",
                                             "--max-trials", "3", "--out", c.out], "max_trials"),
    ("preview n 0", lambda c: ["preview", "-n", "0", "--out", c.out + "/p.png"], "n"),
    ("convert missing .pth", lambda c: ["convert", "resnet18", c.out + "/x.pth",
                                        c.out + "/x.weights.h5"], "x.pth"),
    ("convert output not .weights.h5", lambda c: ["convert", "lenet5", c.keras_file,
                                                  c.out + "/x.h5"], "weights.h5"),
    ("train unknown recipe", lambda c: ["train", "lenet5", "--recipe", "alexnet"], "recipe"),
    ("train batch-size text", lambda c: ["train", "lenet5", "--batch-size", "many"],
     "batch-size"),
    ("train augment garbage", lambda c: ["train", "lenet5", "--augment", "rotation=lots",
                                         "--out", c.out], "rotation"),
    ("train schedule unknown", lambda c: ["train", "lenet5", "--schedule", "cosin",
                                          "--out", c.out], "schedule"),
    ("evaluate bad split", lambda c: ["evaluate", c.keras_file, "--data", str(c.folder),
                                      "--split", "dev"], "split"),
    ("fetch unknown model", lambda c: ["fetch", "resnet5"], "resnet5"),
    ("fetch unknown weights", lambda c: ["fetch", "resnet18", "IMAGENET9K"], "IMAGENET9K"),
    ("multihost process id", lambda c: ["multihost", "--coordinator", "127.0.0.1:1",
                                        "--num-processes", "2", "--process-id", "5"],
     "process_id must be|needs the JAX backend"),
    ("tune tuner", lambda c: ["tune", "lenet5", "--tuner", "grid", "--out", c.out], "tuner"),
    # ---- every option: rows added for the remaining options (issue 27, item 4)
    ("train lr 0", lambda c: ["train", "lenet5", "--lr", "0", "--out", c.out], "lr|learning_rate"),
    ("train strategy", lambda c: ["train", "lenet5", "--strategy", "ring", "--out", c.out],
     "strategy"),
    ("train out is a file", lambda c: ["train", "lenet5", "--data", str(c.folder), "--out",
                                       c.image, "--epochs", "1"], "out"),
    ("train seed text", lambda c: ["train", "lenet5", "--seed", "x"], "seed"),
    ("train loss unknown", lambda c: ["train", "lenet5", "--loss", "hinge", "--out", c.out],
     "loss"),
    ("train label-smoothing 1.5", lambda c: ["train", "lenet5", "--label-smoothing", "1.5",
                                             "--out", c.out], "label_smoothing"),
    ("train class-weight", lambda c: ["train", "lenet5", "--class-weight", "auto"],
     "class-weight"),
    ("train init", lambda c: ["train", "lenet5", "--init", "paper", "--out", c.out], "init"),
    ("train data missing", lambda c: ["train", "lenet5", "--data", str(c.empty) + "/nope",
                                      "--out", c.out], "nope"),
    ("evaluate batch-size 0", lambda c: ["evaluate", c.keras_file, "--data", str(c.folder),
                                         "--batch-size", "0"], "batch_size"),
    ("evaluate data missing", lambda c: ["evaluate", c.keras_file, "--data",
                                         str(c.empty) + "/nope"], "nope"),
    ("predict truncated model", lambda c: ["predict", c.truncated, c.image],
     "not a valid .keras"),
    ("convert unknown model", lambda c: ["convert", "resnet5", c.out + "/x.pth",
                                         c.out + "/x.weights.h5"], "resnet5"),
    ("export top-k 0", lambda c: ["export", c.keras_file, c.out + "/m", "--top-k", "0"],
     "top_k"),
    ("export onto an existing path", lambda c: ["export", c.keras_file, c.keras_file,
                                                "--format", "keras"], "overwrite"),
    ("explain class-index 9", lambda c: ["explain", c.keras_file, c.image, "--out", c.out,
                                         "--class-index", "9"], "class_index"),
    ("explain layer", lambda c: ["explain", c.keras_file, c.image, "--out", c.out,
                                 "--layer", "conv9"], "conv9"),
    ("explain missing image", lambda c: ["explain", c.keras_file, c.missing, "--out", c.out],
     "missing.png"),
    ("explain not an image", lambda c: ["explain", c.keras_file, c.not_image, "--out", c.out],
     "notimage.png"),
    ("tune epochs 0", lambda c: ["tune", "lenet5", "--epochs", "0", "--out", c.out + "/t"],
     "epochs"),
    ("tune max-epochs 0", lambda c: ["tune", "lenet5", "--tuner", "hyperband", "--max-epochs",
                                     "0", "--out", c.out + "/t"], "max_epochs"),
    ("tune factor 1", lambda c: ["tune", "lenet5", "--tuner", "hyperband", "--factor", "1",
                                 "--out", c.out + "/t"], "factor"),
    ("tune space garbage", lambda c: ["tune", "lenet5", "--space", "learning_rate=lots",
                                      "--out", c.out + "/t"], "learning_rate"),
    ("tune batch-size 0", lambda c: ["tune", "lenet5", "--batch-size", "0", "--out",
                                     c.out + "/t"], "batch_size"),
    ("tune image-size 0", lambda c: ["tune", "lenet5", "--image-size", "0", "--out",
                                     c.out + "/t"], "image_size"),
    ("tune strategy", lambda c: ["tune", "lenet5", "--strategy", "ring", "--out",
                                 c.out + "/t"], "strategy"),
    ("tune final-epochs 0", lambda c: ["tune", "lenet5", "--final-epochs", "0", "--out",
                                       c.out + "/t"], "final_epochs"),
    ("tune recipe", lambda c: ["tune", "lenet5", "--recipe", "alexnet2013"], "recipe"),
    ("tune mixed-precision", lambda c: ["tune", "lenet5", "--mixed-precision", "float16"],
     "mixed-precision"),
    ("tune unknown model", lambda c: ["tune", "lenet6", "--out", c.out + "/t"], "lenet6"),
    ("finetune epochs 0", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                     "--epochs", "0", "--out", c.out], "epochs"),
    ("finetune batch-size 0", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                         "--batch-size", "0", "--out", c.out], "batch_size"),
    ("finetune lr -1", lambda c: ["finetune", c.keras_file, "--data", str(c.folder), "--lr",
                                  "-1", "--out", c.out], "learning_rate"),
    ("finetune backbone-lr -1", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                           "--backbone-lr", "-1", "--out", c.out], "backbone"),
    ("finetune unfreeze", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                     "--unfreeze", "some", "--out", c.out], "unfreeze"),
    ("finetune every 0", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                    "--every", "0", "--out", c.out], "every"),
    ("finetune dropout 1.5", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                        "--dropout", "1.5", "--out", c.out], "dropout"),
    ("finetune hidden 0", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                     "--hidden", "0", "--out", c.out], "hidden"),
    ("finetune features", lambda c: ["finetune", c.keras_file, "--data", str(c.folder),
                                     "--features", "conv9", "--out", c.out], "conv9"),
    ("finetune validation-split 1.5", lambda c: ["finetune", c.keras_file, "--data",
                                                 str(c.folder), "--validation-split", "1.5",
                                                 "--out", c.out], "validation_split"),
    ("preview data missing", lambda c: ["preview", "--data", str(c.empty) + "/nope", "--out",
                                        c.out + "/p.png"], "nope"),
    ("preview split", lambda c: ["preview", "--split", "dev", "--out", c.out + "/p.png"],
     "split"),
    ("preview augment garbage", lambda c: ["preview", "--augment", "rotation=lots", "--out",
                                           c.out + "/p.png"], "rotation"),
    ("preview size 0", lambda c: ["preview", "--size", "0", "--out", c.out + "/p.png"],
     "size"),
    ("preview out not png", lambda c: ["preview", "--out", c.out + "/p.jpg"], "png"),
    ("demo epochs 0", lambda c: ["demo", "--epochs", "0", "--out", c.out], "epochs"),
    ("multihost num-processes 0", lambda c: ["multihost", "--coordinator", "127.0.0.1:1",
                                             "--num-processes", "0", "--process-id", "0"],
     "num_processes|needs the JAX backend"),
]


CLI_GAPS = {}  # as GAPS, for the command line


@pytest.mark.parametrize("argv, pattern", [
    pytest.param(*row[1:], id=row[0], marks=pytest.mark.xfail(strict=True, reason=CLI_GAPS[
        row[0]])) if row[0] in CLI_GAPS else pytest.param(*row[1:], id=row[0])
    for row in CLI_CASES])
def test_a_bad_command_line_exits_2_with_one_line(ctx, capsys, argv, pattern):
    from kcnn.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv(ctx))
        except SystemExit as e:  # argparse's own usage errors: its usage line, then one line
            code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("kcnn ") and "Traceback" not in err
    assert len(err) == 1 or err[0].startswith("usage: "), err  # no other output before it
    assert re.search(pattern, err[-1]), err
