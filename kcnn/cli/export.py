"""`kcnn export MODEL.keras PATH [--format F]`: a saved model, ready for serving."""

from kcnn import exporting


def register(commands):
    """Add `export` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "export", help="export a .keras model for serving: SavedModel, ONNX, LiteRT, "
        "OpenVINO, a PyTorch program, a torchvision state dict or .keras",
        description="Export a saved model for serving. The SavedModel takes raw uint8 "
        "images (serving_default), encoded image bytes (serving_encoded) or "
        "preprocessed floats (serving_preprocessed) and returns probabilities and the "
        "top-k class indices and names; the other graph formats take preprocessed "
        "floats. Runs in a TensorFlow (or torch) process when the backend cannot "
        "write the format directly.")
    p.add_argument("model", help="a .keras file")
    p.add_argument("path", help="what to write: a SavedModel directory, or a .onnx, "
                   ".tflite, .xml (OpenVINO), .pt2, .pth (torchvision) or .keras file")
    p.add_argument("--format", default="saved_model", choices=exporting.FORMATS,
                   help="saved_model (default), onnx, litert, openvino, pt2, torchvision "
                   "or keras")
    p.add_argument("--top-k", type=int, default=5,
                   help="top classes returned by the SavedModel (default 5)")
    p.add_argument("--quantize", choices=exporting.QUANTIZE,
                   help="litert only: float16 weights, dynamic (int8 weights) or int8 "
                   "(weights and activations; needs --representative-data)")
    p.add_argument("--representative-data",
                   help="litert --quantize int8: images to calibrate on (a folder, a "
                   "dataset name such as digits, or an .npz of x and y)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace PATH if it exists (default: refuse)")
    p.set_defaults(run=_export)


def _export(args):
    options = {}
    if args.format == "saved_model":
        options["top_k"] = args.top_k
    elif args.top_k != 5:
        raise ValueError(f"--top-k applies to --format saved_model only; received "
                         f"--format {args.format}.")
    if args.quantize is not None or args.representative_data is not None:
        options["quantize"] = args.quantize
        options["representative_data"] = exporting.data_from_argument(
            args.representative_data)
    exporting.export(args.model, args.path, format=args.format, overwrite=args.overwrite,
                     **options)
    print(f"wrote {args.path} ({args.format})")
    return 0
