"""Tune AlexNet on CIFAR-10: learning rate, dropout and weight decay, Bayesian search.

Trains with the paper's recipe (`alexnet2012`: SGD with momentum, coupled
weight decay, the rate divided by 10 on plateaus, crops, flips and PCA
lighting) at 128x128, a third of the cost of 224x224 (pass --image-size 224 for
the paper's size). Each trial is 10 epochs over 45,000 images: a GPU job.

Data: tensorflow-datasets "cifar10" (170 MB). With internet the first run
downloads and prepares it; without, prepare it on a machine that has internet
(`python -c "import tensorflow_datasets as tfds; tfds.builder('cifar10').download_and_prepare()"`)
and copy ~/tensorflow_datasets/cifar10 to the same place here (or point
TFDS_DATA_DIR at a mirrored copy).

    python tuning/alexnet-cifar10.py
    python tuning/alexnet-cifar10.py --max-trials 30  # run again: 10 more trials
"""

import sys

from kcnn.cli import tune

JOB = ["alexnet", "--data", "cifar10", "--tuner", "bayesian",
       "--max-trials", "20", "--epochs", "10", "--recipe", "alexnet2012",
       "--image-size", "128", "--space", "learning_rate=1e-3:1e-1",
       "--space", "weight_decay=1e-5:1e-3", "--out", "runs/tune/alexnet-cifar10"]

if __name__ == "__main__":
    sys.exit(tune.main(JOB + sys.argv[1:]))
