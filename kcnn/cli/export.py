"""`kcnn export MODEL.keras PATH [--format F]`: a saved model, ready for serving."""

from kcnn import exporting


def register(commands):
    """Add `export` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "export", help="export a .keras model as a SavedModel, ONNX or .keras file",
        description="Export a saved model for serving. The SavedModel takes raw uint8 "
        "images (serving_default), encoded image bytes (serving_encoded) or "
        "preprocessed floats (serving_preprocessed) and returns probabilities and the "
        "top-k class indices and names. Runs in a TensorFlow process when the "
        "backend cannot export directly.")
    p.add_argument("model", help="a .keras file")
    p.add_argument("path", help="the SavedModel directory, .onnx or .keras file to write")
    p.add_argument("--format", default="saved_model", choices=exporting.FORMATS,
                   help="saved_model (default), onnx or keras")
    p.add_argument("--top-k", type=int, default=5,
                   help="top classes returned by the SavedModel (default 5)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace PATH if it exists (default: refuse)")
    p.set_defaults(run=_export)


def _export(args):
    exporting.export(args.model, args.path, format=args.format, overwrite=args.overwrite,
                     top_k=args.top_k)
    print(f"wrote {args.path} ({args.format})")
    return 0
