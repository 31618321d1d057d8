"""AutoAugment, RandAugment and TrivialAugmentWide against torchvision itself.

Each operation at fixed magnitudes (a negative one for the signed operations)
equals what torchvision's policies apply for that name and magnitude
(`_apply_image_or_video_transform`), on 64x64 crops of scikit-learn's sample
photos (and one grayscale crop): Posterize, Solarize, Equalize, Invert and the
translations exactly; the colour operations within one level, kcnn rounding
where torchvision truncates, and two levels for Color and Contrast near factor
0, where torchvision also floors the gray level it blends with; nearest
geometry with at most 1% of the pixels different (ties of nearest-neighbour
sampling, see test_torchvision_parity.py), bilinear within a mean of one level
and 1% of the values off by more than 2, with the policies' default fill=None
(torchvision's default) and with fill=0, which blend the rim of the moved image
differently. The tables (operations, bins, signs) and the
AutoAugment sub-policies are compared with torchvision's own, so they cannot
drift; the policies repeat for a seed and run inside tf.data.
"""

import kcnn  # noqa: F401,I001  (first: it orders keras before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from kcnn.data import autoaugment as aa

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2._utils import _setup_fill_arg  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_sample_images  # noqa: E402

_PHOTOS = [np.asarray(Image.fromarray(np.asarray(p, np.uint8)).reduce(5))
           for p in load_sample_images().images]  # china, flower: 86x128
CROPS = [_PHOTOS[0][10:74, 20:84], _PHOTOS[1][20:84, 40:104], _PHOTOS[1][:64, :64, 1:2]]
SMALL = CROPS[1][::2, ::2]  # 32x32, for the policies
TORCHVISION = v2.RandAugment()  # its _apply_image_or_video_transform is the reference

# name -> magnitudes as torchvision's policies hand them over (signed ones negative too)
MAGNITUDES = {
    "Identity": [0.0], "AutoContrast": [0.0], "Equalize": [0.0], "Invert": [0.0],
    "ShearX": [0.3, -0.99], "ShearY": [0.21, -0.99],
    "TranslateX": [14.7, -32.0], "TranslateY": [8.0, -13.9],
    "Rotate": [30.0, -135.0],
    "Brightness": [0.9, -0.99], "Color": [0.3, -0.99], "Contrast": [0.6, -0.99],
    "Sharpness": [0.9, -0.99],
    "Posterize": [2.0, 4.0, 7.0], "Solarize": [0.8, 0.5, 0.0],
}
EXACT = {"Identity", "Equalize", "Invert", "Posterize", "Solarize", "TranslateX",
         "TranslateY"}
GEOMETRY = {"ShearX", "ShearY", "Rotate"}


def torchvisions(image, name, magnitude, interpolation="nearest", fill=None):
    out = TORCHVISION._apply_image_or_video_transform(
        tv_tensors.Image(torch.from_numpy(np.array(image)).permute(2, 0, 1)), name, magnitude,
        interpolation=v2.InterpolationMode(interpolation), fill=_setup_fill_arg(fill))
    return out.permute(1, 2, 0).numpy()


def levels(got, want):
    return np.abs(got.astype(np.int32) - want.astype(np.int32))


def test_the_operations_are_torchvisions_and_none_is_missing():
    assert set(aa.OPERATIONS) == set(MAGNITUDES)
    spaces = (v2.AutoAugment, v2.RandAugment, v2.TrivialAugmentWide)
    assert set(aa.OPERATIONS) == set().union(*(c._AUGMENTATION_SPACE for c in spaces))


@pytest.mark.parametrize("name", list(MAGNITUDES))
def test_each_operation_equals_torchvisions_at_fixed_magnitudes(name):
    for magnitude in MAGNITUDES[name]:
        for image in CROPS:
            got = aa.apply_op(tf.constant(image), name, magnitude).numpy()
            want = torchvisions(image, name, magnitude)
            assert got.shape == want.shape and got.dtype == np.uint8
            diff = levels(got, want)
            context = f"{name} {magnitude} on {image.shape}"
            if name in EXACT:
                assert diff.max() == 0, f"{context}: max difference {diff.max()}"
            elif name in GEOMETRY:
                differ = np.any(diff > 0, axis=-1).mean()
                assert differ <= 0.01, f"{context}: {differ:.2%} of the pixels differ"
            else:  # colour: kcnn rounds, torchvision truncates (twice, near factor 0)
                bound = 2 if name in ("Color", "Contrast") and magnitude < -0.9 else 1
                assert diff.max() <= bound, f"{context}: max difference {diff.max()}"
                assert diff.mean() <= 0.6 * bound, f"{context}: mean {diff.mean():.2f}"


@pytest.mark.parametrize("fill", [None, 0])
@pytest.mark.parametrize("name", ["ShearX", "ShearY", "Rotate"])
def test_bilinear_geometry_equals_torchvisions_with_the_same_fill(name, fill):
    for magnitude in MAGNITUDES[name]:
        image = CROPS[0]
        got = aa.apply_op(tf.constant(image), name, magnitude, "bilinear", fill).numpy()
        diff = levels(got, torchvisions(image, name, magnitude, "bilinear", fill=fill))
        assert diff.mean() <= 1.0 and (diff > 2).mean() <= 0.01, (name, magnitude)


def test_sharpness_keeps_the_border_and_small_images():
    image = CROPS[0]
    sharp = aa.adjust_sharpness(tf.constant(image), 3.0).numpy()
    border = np.ones(image.shape[:2], bool)
    border[1:-1, 1:-1] = False
    np.testing.assert_array_equal(sharp[border], image[border])
    assert levels(sharp, image)[~border].max() > 20  # the inside did change
    tiny = image[:2, :5]
    np.testing.assert_array_equal(aa.adjust_sharpness(tf.constant(tiny), 3.0).numpy(), tiny)


# ---------------------------------------------------------------------------
# The tables: operations, bins and signs, and AutoAugment's sub-policies.

@pytest.mark.parametrize("ours, theirs, bins", [
    (aa.AUTOAUGMENT_SPACE, v2.AutoAugment, 10),
    (aa.RANDAUGMENT_SPACE, v2.RandAugment, 31),
    (aa.RANDAUGMENT_SPACE, v2.RandAugment, 7),
    (aa.TRIVIALAUGMENT_WIDE_SPACE, v2.TrivialAugmentWide, 31),
], ids=["autoaugment", "randaugment", "randaugment-7-bins", "trivialaugment"])
def test_operation_tables_equal_torchvisions(ours, theirs, bins):
    height, width = 48, 80
    space = theirs._AUGMENTATION_SPACE
    assert [name for name, _, _ in ours] == list(space)  # the order the draws index
    table, signed = aa.magnitude_table(ours, bins, height, width)
    np.testing.assert_array_equal(signed.numpy(), [s for _, s in space.values()])
    for row, (name, fn, _), (theirs_fn, _) in zip(table.numpy(), ours, space.values()):
        want = theirs_fn(bins, height, width)
        assert (fn is None) == (want is None), name
        if want is not None:
            np.testing.assert_allclose(row, want.numpy().astype(np.float64), rtol=1e-6,
                                       atol=1e-6, err_msg=name)


@pytest.mark.parametrize("policy", aa.POLICIES)
def test_autoaugment_sub_policies_equal_torchvisions(policy):
    theirs = v2.AutoAugment(v2.AutoAugmentPolicy(policy))._policies
    assert [list(pair) for pair in aa.AUTOAUGMENT_POLICIES[policy]] == \
        [list(pair) for pair in theirs]
    out = aa.auto_augment(tf.constant(SMALL), tf.constant([4, 2]), policy)
    assert out.dtype == tf.uint8 and out.shape == SMALL.shape


# ---------------------------------------------------------------------------
# The policies: seeded, graph mode, torchvision's draws.

POLICIES = {
    "autoaugment": aa.auto_augment,
    "randaugment": aa.rand_augment,
    "trivialaugment": aa.trivial_augment_wide,
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_policies_repeat_for_a_seed_differ_across_seeds_and_run_in_tf_data(policy):
    fn = POLICIES[policy]
    seeds = tf.constant([[s, 11] for s in range(8)], tf.int64)
    images = tf.data.Dataset.from_tensors(tf.constant(SMALL)).repeat(8)
    mapped = tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(seeds)).map(fn)
    outputs = [out.numpy() for out in mapped]
    for seed, out in zip(seeds[:3], outputs):
        assert out.dtype == np.uint8 and out.shape == SMALL.shape
        np.testing.assert_array_equal(fn(tf.constant(SMALL), seed).numpy(), out)  # eager
    assert len({out.tobytes() for out in outputs}) >= 4


def test_rand_augment_applies_table_operations_at_its_bin():
    # One operation at bin 5 of 11: each output is one (operation, sign) of the table.
    image = tf.constant(SMALL)
    table, signed = aa.magnitude_table(aa.RANDAUGMENT_SPACE, 11, *SMALL.shape[:2])
    candidates = {}
    for (name, _, _), magnitude, sign in zip(aa.RANDAUGMENT_SPACE, table[:, 5], signed):
        for value in ([magnitude, -magnitude] if sign else [magnitude]):
            out = aa.apply_op(image, name, value).numpy().tobytes()
            candidates.setdefault(out, name)
    seen = [candidates.get(aa.rand_augment(image, tf.constant([s, 1]), num_ops=1, magnitude=5,
                                           num_magnitude_bins=11).numpy().tobytes())
            for s in range(16)]
    assert None not in seen
    assert len(set(seen)) >= 6  # drawn across the table, not stuck on one
    np.testing.assert_array_equal(aa.rand_augment(image, tf.constant([0, 1]), num_ops=0),
                                  SMALL)


# ---------------------------------------------------------------------------
# Bad arguments.

@pytest.mark.parametrize("call, message", [
    (lambda x: aa.auto_augment(x, [0, 1], policy="cifar100"), "policy"),
    (lambda x: aa.rand_augment(x, [0, 1], num_ops=-1), "num_ops"),
    (lambda x: aa.rand_augment(x, [0, 1], magnitude=31), "magnitude"),
    (lambda x: aa.rand_augment(x, [0, 1], magnitude=2, num_magnitude_bins=1),
     "num_magnitude_bins"),
    (lambda x: aa.trivial_augment_wide(x, [0, 1], num_magnitude_bins=1.5),
     "num_magnitude_bins"),
    (lambda x: aa.trivial_augment_wide(x, [0, 1], interpolation="bicubic"), "interpolation"),
    (lambda x: aa.trivial_augment_wide(x, [0, 1], fill=(0, 0, 0)), "fill"),
    (lambda x: aa.trivial_augment_wide(tf.cast(x, tf.float32), [0, 1]), "uint8"),
    (lambda x: aa.apply_op(x, "Cutout", 1.0), "name"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(tf.constant(SMALL))
