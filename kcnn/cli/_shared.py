"""What the command modules share: running a command, its errors, common arguments."""

import argparse
import sys

# Errors a user fixes by changing the command line: one line and exit 2, like
# argparse's own usage errors, instead of a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, TypeError)

AUGMENT_HELP = ("augmentations as KEY=VALUE with torchvision's names, e.g. rotation=15 "
                "translate=0.1,0.1 scale=0.9,1.1 shear=10 brightness=0.4 contrast=0.4 "
                "saturation=0.4 hue=0.1 grayscale=0.1 vertical_flip=0.5 erasing=0.25 "
                "mixup=0.2 cutmix=1.0 flip=false; a bare name takes torchvision's default")


def run(parser, argv=None):
    """Parse `argv` with `parser` and run the command it names; the exit code.

    A `USER_ERRORS` error the command raises is printed as one line,
    `kcnn <command>: <message>`, on stderr, and the exit code is 2.
    """
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as e:
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"kcnn {args.command}: {message}", file=sys.stderr)
        return 2


def standalone(register, prog, argv=None):
    """Run the one command `register` adds as a program of its own, e.g.
    `python -m kcnn.demo`: its options without the command's name before them."""
    one = _OneCommand(prog)
    register(one)
    return run(one.parser, argv)


class _OneCommand:
    """Stands in for argparse's sub-parsers object: the sub-parser that
    `register` adds becomes the whole program's parser."""

    def __init__(self, prog):
        self.prog = prog
        self.parser = None

    def add_parser(self, name, *, help=None, **kwargs):
        del help  # the one-line summary in `kcnn --help`; `description` says it here
        self.parser = argparse.ArgumentParser(prog=self.prog, **kwargs)
        self.parser.set_defaults(command=name)
        return self.parser


def add_model(parser, *, default=None, help):
    """MODEL as a positional argument, with `--model` accepted for the same value.

    The commands agree on a positional MODEL; `--model` keeps older command
    lines working. Given both ways with different values, it is refused.
    """
    parser.add_argument("model", nargs="?", default=argparse.SUPPRESS, action=_Once,
                        metavar="MODEL", help=f"{help} (or --model MODEL)")
    parser.add_argument("--model", dest="model", default=default, action=_Once,
                        help=argparse.SUPPRESS)


class _Once(argparse.Action):
    """Stores a value that may be given in two ways, and refuses two different ones."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = f"_{self.dest}_given"
        previous = getattr(namespace, given, None)
        if previous is not None and previous != values:
            parser.error(f"{self.dest.upper()} given twice: {previous!r} and {values!r}")
        setattr(namespace, given, values)
        setattr(namespace, self.dest, values)


def add_out(parser, *, default, help, aliases=()):
    """`--out`, the output file or folder of every command; `aliases` are the
    option's older names, still accepted and left out of the help."""
    parser.add_argument("--out", default=default, help=help)
    for alias in aliases:
        parser.add_argument(alias, dest="out", default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)


def add_recipe(parser):
    """`--recipe`, one of `kcnn.training.RECIPES`."""
    from kcnn.training import RECIPES

    parser.add_argument("--recipe", default="default", choices=sorted(RECIPES),
                        help="optimizer, schedule, augmentation and epochs (default: "
                        "default)")


def load_model(path, *, exported=False):
    """The model in the .keras file `path` (or, with `exported=True`, any file
    `kcnn export` wrote); a missing or broken file is a usage error."""
    from kcnn import loading

    return loading.load_model(path, argument="MODEL", exported=exported)
