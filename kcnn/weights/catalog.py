"""torchvision's published ImageNet weights for kcnn's builders, as a table.

Each row is one torchvision weight enum member: the builder, the tag
(torchvision's name, e.g. `IMAGENET1K_V2`), the file under
https://download.pytorch.org/models/ (whose name carries the first hex digits
of the file's SHA-256, which torch.hub checks and so does kcnn), torchvision's
published ImageNet-1K top-1/top-5 and file size (MB), and the evaluation
transform where it differs from resize 256, crop 224, bilinear, ImageNet
statistics. `default` marks torchvision's `DEFAULT` weights, which
`weights="imagenet"` selects. `tests/weights/test_catalog.py` checks every row
against the installed torchvision's weight enums and `transforms()`.
"""

import re

from kcnn.weights.preprocessing import IMAGENET_MEAN, IMAGENET_STD, record

BASE_URL = "https://download.pytorch.org/models/"

# The statistics of VGG-16's features-only weights (ported from amdegroot's
# SSD): Caffe's BGR means in RGB order on [0, 1], and unit std on [0, 255].
_AMDEGROOT_MEAN = (0.48235, 0.45882, 0.40784)
_AMDEGROOT_STD = (1.0 / 255.0,) * 3

# torch.hub's rule: the hex digits after the last "-" of the file name.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")


def _row(builder, tag, file, top1, top5, size, *, resize=256, crop=224,
         interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD,
         default=True, **builder_arguments):
    return {
        "model_name": builder,
        "tag": tag,
        "url": BASE_URL + file,
        "sha256": _HASH_IN_NAME.search(file).group(1),
        "preprocessing": record(crop=crop, resize=resize, mean=mean, std=std,
                                interpolation=interpolation),
        "top1": top1,
        "top5": top5,
        "file_size": size,
        "features_only": top1 is None,
        "default": default,
        "builder_arguments": builder_arguments,
    }


ROWS = (
    _row("alexnet", "IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", 56.522, 79.066, 233.087),
    _row("vgg11", "IMAGENET1K_V1", "vgg11-8a719046.pth", 69.02, 88.628, 506.84),
    _row("vgg11_bn", "IMAGENET1K_V1", "vgg11_bn-6002323d.pth", 70.37, 89.81, 506.881),
    _row("vgg13", "IMAGENET1K_V1", "vgg13-19584684.pth", 69.928, 89.246, 507.545),
    _row("vgg13_bn", "IMAGENET1K_V1", "vgg13_bn-abd245e5.pth", 71.586, 90.374, 507.59),
    _row("vgg16", "IMAGENET1K_V1", "vgg16-397923af.pth", 71.592, 90.382, 527.796),
    # Only the `features` part is trained (torchvision: the classifier holds
    # NaNs), so these load with include_top=False only.
    _row("vgg16", "IMAGENET1K_FEATURES", "vgg16_features-amdegroot-88682ab5.pth", None, None,
         527.802, mean=_AMDEGROOT_MEAN, std=_AMDEGROOT_STD, default=False),
    _row("vgg16_bn", "IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", 73.36, 91.516, 527.866),
    _row("vgg19", "IMAGENET1K_V1", "vgg19-dcbb9e9d.pth", 72.376, 90.876, 548.051),
    _row("vgg19_bn", "IMAGENET1K_V1", "vgg19_bn-c79401a0.pth", 74.218, 91.842, 548.143),
    _row("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758, 89.078, 44.661),
    _row("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314, 91.42, 83.275),
    _row("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.13, 92.862, 97.781,
         default=False),
    _row("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, 95.434, 97.79,
         resize=232),
    _row("resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 77.374, 93.546, 170.511,
         default=False),
    _row("resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 81.886, 95.78, 170.53,
         resize=232),
    _row("resnet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 78.312, 94.046, 230.434,
         default=False),
    _row("resnet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 82.284, 96.002, 230.474,
         resize=232),
    # Ported from the original (Caffe) model, which expects (x - 0.5) / 0.5:
    # torchvision switches `transform_input` on with these weights.
    _row("googlenet", "IMAGENET1K_V1", "googlenet-1378be20.pth", 69.778, 89.53, 49.731,
         transform_input=True),
    _row("densenet121", "IMAGENET1K_V1", "densenet121-a639ec97.pth", 74.434, 91.972, 30.845),
    _row("densenet161", "IMAGENET1K_V1", "densenet161-8d451a50.pth", 77.138, 93.56, 110.369),
    _row("densenet169", "IMAGENET1K_V1", "densenet169-b2777c0a.pth", 75.6, 92.806, 54.708),
    _row("densenet201", "IMAGENET1K_V1", "densenet201-c1103571.pth", 76.896, 93.37, 77.373),
    _row("mobilenet_v2", "IMAGENET1K_V1", "mobilenet_v2-b0353104.pth", 71.878, 90.286, 13.555,
         default=False),
    _row("mobilenet_v2", "IMAGENET1K_V2", "mobilenet_v2-7ebf99e0.pth", 72.154, 90.822, 13.598,
         resize=232),
    _row("efficientnet_b0", "IMAGENET1K_V1", "efficientnet_b0_rwightman-7f5810bc.pth",
         77.692, 93.532, 20.451, interpolation="bicubic"),
    _row("efficientnet_b1", "IMAGENET1K_V1", "efficientnet_b1_rwightman-bac287d4.pth",
         78.642, 94.186, 30.134, crop=240, interpolation="bicubic", default=False),
    _row("efficientnet_b1", "IMAGENET1K_V2", "efficientnet_b1-c27df63c.pth",
         79.838, 94.934, 30.136, resize=255, crop=240),
    _row("efficientnet_b2", "IMAGENET1K_V1", "efficientnet_b2_rwightman-c35c1473.pth",
         80.608, 95.31, 35.174, resize=288, crop=288, interpolation="bicubic"),
    _row("efficientnet_b3", "IMAGENET1K_V1", "efficientnet_b3_rwightman-b3899882.pth",
         82.008, 96.054, 47.184, resize=320, crop=300, interpolation="bicubic"),
    _row("efficientnet_b4", "IMAGENET1K_V1", "efficientnet_b4_rwightman-23ab8bcd.pth",
         83.384, 96.594, 74.489, resize=384, crop=380, interpolation="bicubic"),
    _row("efficientnet_b5", "IMAGENET1K_V1", "efficientnet_b5_lukemelas-1a07897c.pth",
         83.444, 96.628, 116.864, resize=456, crop=456, interpolation="bicubic"),
    _row("efficientnet_b6", "IMAGENET1K_V1", "efficientnet_b6_lukemelas-24a108a5.pth",
         84.008, 96.916, 165.362, resize=528, crop=528, interpolation="bicubic"),
    _row("efficientnet_b7", "IMAGENET1K_V1", "efficientnet_b7_lukemelas-c5b4e57e.pth",
         84.122, 96.908, 254.675, resize=600, crop=600, interpolation="bicubic"),
)
