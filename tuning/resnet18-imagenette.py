"""Tune ResNet-18 on Imagenette: learning rate, dropout and optimizer, Hyperband.

Imagenette is ten easy ImageNet classes (9,469 training and 3,925 validation
images); its 160-pixel version is trained at 128x128. Hyperband (up to 27
epochs a model, factor 3) spends most epochs on the promising values. ResNet-18
has no dropout of its own: kcnn puts one Dropout layer in front of its `fc`
classifier. A GPU job.

Data: tensorflow-datasets "imagenette/160px-v2" (100 MB). With internet the
first run downloads and prepares it; without, prepare it on a machine that has
internet (`python -c "import tensorflow_datasets as tfds; tfds.builder('imagenette/160px-v2').download_and_prepare()"`)
and copy ~/tensorflow_datasets/imagenette to the same place here (or point
TFDS_DATA_DIR at a mirrored copy). fast.ai's imagenette2-160.tgz, unpacked,
works too: pass its folder (holding train/ and val/) as --data.

    python tuning/resnet18-imagenette.py
    python tuning/resnet18-imagenette.py --data /data/imagenette2-160
"""

import sys

from kcnn.cli import tune

JOB = ["resnet18", "--data", "imagenette/160px-v2", "--tuner", "hyperband",
       "--max-epochs", "27", "--factor", "3", "--image-size", "128",
       "--space", "optimizer=adamw,sgd", "--out", "runs/tune/resnet18-imagenette"]

if __name__ == "__main__":
    sys.exit(tune.main(JOB + sys.argv[1:]))
