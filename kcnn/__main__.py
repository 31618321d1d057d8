"""`python -m kcnn ...` runs the command line."""

import sys

from kcnn.cli import main

sys.exit(main())
