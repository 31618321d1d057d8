"""`kcnn explain MODEL.keras IMAGE...`: Grad-CAM overlays, where the model looked."""

from kcnn.cli import _shared
from kcnn.inspect import explain


def register(commands):
    """Add `explain` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "explain", help="Grad-CAM overlays: where the model looked",
        description="Write a Grad-CAM heatmap over each image (the crop the model "
        "sees) for the predicted class or --class-index, as <out>/<image>_gradcam.png.")
    p.add_argument("model", help="a .keras file")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    _shared.add_out(p, default="runs/explain", help="output folder (default runs/explain)")
    p.add_argument("--layer", default=None,
                   help="layer whose feature map to use (default: the last convolution's)")
    p.add_argument("--class-index", type=int, default=None,
                   help="class to explain (default: the predicted class)")
    p.set_defaults(run=_explain)


def _explain(args):
    model = _shared.load_model(args.model)
    for r in explain(model, args.images, args.out, layer=args.layer,
                     class_index=args.class_index):
        print(f"{r['image']} -> {r['overlay']}  {r['class_name']} ({r['probability']:.4f})")
    return 0
