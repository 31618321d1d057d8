"""`kcnn predict MODEL.keras IMAGE...`: the top-k class names of image files."""

import kcnn
from kcnn.cli import _shared


def register(commands):
    """Add `predict` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser("predict", help="top-k class names for image files")
    p.add_argument("model", help="a .keras file, or a file kcnn export wrote (SavedModel "
                   "folder, .onnx, .tflite, .xml, .pt2)")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    p.add_argument("--top-k", type=int, default=5, help="classes to show (default 5)")
    p.set_defaults(run=_predict)


def _predict(args):
    results = kcnn.predict(_shared.load_model(args.model, exported=True), args.images, top_k=args.top_k)
    for path, ranked in zip(args.images, results):
        print(path)
        for name, p in ranked:
            print(f"  {p:7.4f}  {name}")
    return 0
