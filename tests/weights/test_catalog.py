"""The weights table cannot drift from torchvision: every entry is checked
against the installed torchvision's weight enums, metadata and `transforms()`."""

import importlib.util
import math
import os
import sys

import numpy as np
import pytest

import kcnn
from kcnn.weights import catalog, hub
from kcnn.weights.imagenet_classes import IMAGENET_CLASSES

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torchvision.models import get_model_weights  # noqa: E402

ROWS = {(row["model_name"], row["tag"]): row for row in catalog.ROWS}
FAMILIES = ("alexnet", "vgg", "resnet", "googlenet", "densenet", "mobilenet", "efficientnet")


def torchvision_weights(builder):
    try:
        return get_model_weights(builder)
    except (ValueError, KeyError):  # no such torchvision model (lenet5, simple_cnn)
        return None


def test_every_torchvision_weight_of_every_builder_is_in_the_table():
    published = set()
    for builder in kcnn.list_models():
        enum = torchvision_weights(builder)
        published |= {(builder, w.name) for w in enum or ()}
    assert set(ROWS) == published
    assert {(e.model_name, e.tag) for e in kcnn.weights.list_weights()} >= published


def test_entries_match_torchvision_metadata_and_transforms():
    # One test for all entries: the suite's per-test set-up costs more than a check.
    for builder, tag in ROWS:
        entry = kcnn.weights.get_weights(builder, tag)
        enum = torchvision_weights(builder)
        weights = enum[tag]
        where = f"{builder}/{tag}"
        assert entry.url == weights.url, where
        file_name = weights.url.rsplit("/", 1)[1]
        assert entry.file_name == file_name, where
        assert entry.sha256 == torch.hub.HASH_REGEX.search(file_name).group(1), where
        assert entry.default == (weights is enum.DEFAULT), where
        metrics = weights.meta["_metrics"]["ImageNet-1K"]
        if math.isnan(metrics["acc@1"]):
            assert entry.features_only and entry.top1 is None and entry.top5 is None, where
            assert weights.meta["categories"] is None, where
        else:
            assert not entry.features_only, where
            assert (entry.top1, entry.top5) == (metrics["acc@1"], metrics["acc@5"]), where
            assert entry.class_names == tuple(weights.meta["categories"]), where
        assert entry.file_size == weights.meta["_file_size"], where

        transform = weights.transforms()
        record = entry.preprocessing
        assert [record["resize"]] == list(transform.resize_size), where
        assert [record["crop"]] == list(transform.crop_size), where
        assert record["interpolation"] == transform.interpolation.value, where
        assert transform.antialias, where  # kcnn's resize is antialiased too
        assert record["scale"] == 1 / 255, where
        np.testing.assert_allclose(record["mean"], transform.mean, rtol=1e-12, err_msg=where)
        np.testing.assert_allclose(record["std"], transform.std, rtol=1e-12, err_msg=where)


def test_builder_arguments_are_what_torchvision_sets_with_the_weights(monkeypatch):
    """GoogLeNet: torchvision turns transform_input on when given weights."""
    checked = 0
    for (builder, tag), row in ROWS.items():
        if not row["builder_arguments"]:
            continue
        enum = torchvision_weights(builder)
        # The state dict torchvision would download: that of the same model.
        state = getattr(torchvision.models, builder)(
            weights=None, aux_logits=True, init_weights=False).state_dict()
        monkeypatch.setattr(type(enum[tag]), "get_state_dict",
                            lambda self, *args, **kwargs: state)
        model = getattr(torchvision.models, builder)(weights=enum[tag])
        for argument, value in row["builder_arguments"].items():
            assert getattr(model, argument) == value
        checked += 1
    assert checked == 1


def test_imagenet_classes_are_torchvision_names_in_tfds_label_order():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    assert [name for _, name in IMAGENET_CLASSES] == list(_IMAGENET_CATEGORIES)
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None:
        pytest.skip("tensorflow-datasets is not installed")
    labels = os.path.join(spec.submodule_search_locations[0], "datasets", "imagenet2012",
                          "labels.txt")
    with open(labels) as f:
        assert [wnid for wnid, _ in IMAGENET_CLASSES] == f.read().split()


def test_each_family_has_one_normalisation_per_weight_name():
    """What lets a family's `preprocess_input(weights=...)` be one function."""
    for family in FAMILIES:
        builders = sys.modules[f"kcnn.models.{family}"].__all__
        by_tag = {}
        for entry in (e for b in builders for e in kcnn.weights.list_weights(b)):
            stats = (entry.preprocessing["scale"], tuple(entry.preprocessing["mean"]),
                     tuple(entry.preprocessing["std"]))
            for tag in {entry.tag, *(hub.ALIASES if entry.default else ())}:
                by_tag.setdefault(tag, set()).add(stats)
        assert by_tag and all(len(stats) == 1 for stats in by_tag.values()), family


def test_readme_table_lists_every_entry():
    lines = kcnn.weights.markdown_table().splitlines()
    assert len(lines) == 2 + len(catalog.ROWS)
    assert "| resnet50 | `IMAGENET1K_V2` = `imagenet` | 80.858 | 95.434 | 97.8 |" in lines
    assert "| resnet50 | `IMAGENET1K_V1` | 76.130 | 92.862 | 97.8 |" in lines
    assert any(line.startswith("| vgg16 | `IMAGENET1K_FEATURES` | features only")
               for line in lines)
    for row in catalog.ROWS:
        assert any(line.startswith(f"| {row['model_name']} | `{row['tag']}`") for line in lines)
