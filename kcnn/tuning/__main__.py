"""`python -m kcnn.tuning ARGS` is `kcnn tune ARGS` (tuning/distributed.py starts it)."""

import sys

from kcnn.cli.tune import main

sys.exit(main())
