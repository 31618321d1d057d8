"""`kcnn preview [--data SOURCE] [--augment ...] --out PNG`: what the model will see."""

from kcnn import checks
from kcnn.cli import _shared
from kcnn.data import augment as augment_ops
from kcnn.data.pipeline import preview
from kcnn.data.sources import load


def register(commands):
    """Add `preview` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "preview", help="write a PNG grid of augmented training images",
        description="Write a PNG grid of training images after augmentation, so you see "
        "what the model will see. Options as for 'kcnn train --augment'.")
    p.add_argument("--data", default="digits",
                   help="'digits' (default), a tensorflow-datasets name or an image folder")
    p.add_argument("--split", default="train", help="split to read (default train)")
    p.add_argument("--augment", nargs="*", default=[], metavar="OPTION",
                   help=_shared.AUGMENT_HELP + " (on top of the default random crop and flip)")
    p.add_argument("--size", type=int, default=None,
                   help="crop size (default: the first image's size)")
    p.add_argument("--resize", type=int, default=None,
                   help="resize the shorter side to this before cropping (default: resize "
                        "to the crop)")
    p.add_argument("-n", type=int, default=16, help="number of images (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _shared.add_out(p, default="preview.png", help="PNG file (default preview.png)")
    p.set_defaults(run=_preview)


def _preview(args):
    checks.positive_int("size", args.size, optional=True)
    checks.positive_int("resize", args.resize, optional=True)
    source = load(args.data, split=args.split)
    preprocessing = None
    if args.size is not None or args.resize is not None:
        image, _ = next(iter(source.dataset.take(1)))
        size = args.size or min(int(image.shape[0]), int(image.shape[1]))
        preprocessing = {"crop": size, "resize": args.resize, "mean": [0.0], "std": [1.0],
                         "scale": 1.0 / 255.0}
    grid = preview(source, args.out, augment=augment_ops.resolve(args.augment), n=args.n,
                   seed=args.seed, preprocessing=preprocessing,
                   channels=None if preprocessing is None else source.channels)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}, {args.n} images of "
          f"{source.name} {args.split})")
    return 0
