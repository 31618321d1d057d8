"""Tune LeNet-5 on the digits: learning rate and dropout, 20 random trials.

Offline (scikit-learn's bundled digits), a few minutes on a laptop CPU:

    python tuning/lenet5-digits.py
    python tuning/lenet5-digits.py --max-trials 30    # run again: 10 more trials

The same as `kcnn tune lenet5 --data digits --tuner random --max-trials 20
--epochs 10 --out runs/tune/lenet5-digits`; options given on the command line
override the job's (see `kcnn tune --help`).
"""

import sys

from kcnn.cli import tune

JOB = ["lenet5", "--data", "digits", "--tuner", "random",
       "--max-trials", "20", "--epochs", "10", "--out", "runs/tune/lenet5-digits"]

if __name__ == "__main__":
    sys.exit(tune.main(JOB + sys.argv[1:]))
