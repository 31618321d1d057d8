"""The command-line side of pretrained weights.

    kcnn weights [PATTERN]        the table of downloadable weights
    kcnn fetch MODEL [WEIGHTS]    download, verify and convert them into the cache
"""

from kcnn.registry import get_builder
from kcnn.weights import hub


def register(commands):
    """Add `weights` and `fetch` to the sub-parsers of `kcnn.cli.build_parser()`."""
    p = commands.add_parser(
        "weights", help="list the pretrained weights (builder, tag, top-1/top-5, size)")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style filter on builder names, e.g. 'resnet*' (default: all)")
    p.set_defaults(run=_list)

    p = commands.add_parser(
        "fetch", help="download, verify and convert pretrained weights into the cache",
        description="Fetch pretrained weights into the Keras cache ($KERAS_HOME/models/kcnn), "
        f"so that later builds need neither the network nor torch. {hub.MIRROR_ENV} "
        "names a mirror (a base URL or a directory holding the same file names).")
    p.add_argument("model", help="builder name, e.g. resnet50")
    p.add_argument("weights", nargs="?", default="imagenet",
                   help="'imagenet' (default) or a tag from 'kcnn weights'")
    p.set_defaults(run=_fetch)


def _list(args):
    if not hub.list_weights(args.pattern):
        raise ValueError(f"no pretrained weights for builders matching {args.pattern!r} "
                         f"(see 'kcnn list' for the builder names).")
    print(hub.markdown_table(args.pattern), end="")
    return 0


def _fetch(args):
    builder = get_builder(args.model)
    entry = hub.get_weights(args.model, args.weights)
    try:
        builder(weights=args.weights, include_top=not entry.features_only,
                classes=entry.classes)
    except hub.WeightsDownloadError as e:  # printed like the other user-facing errors
        raise ValueError(str(e)) from e
    print(f"{entry}: {entry.cache_path}")
    return 0
