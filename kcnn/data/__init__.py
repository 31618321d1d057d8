"""Images in, batches out: sources, augmentation and tf.data pipelines.

    source = kcnn.data.load("digits")                # or a folder, a tfds name, (x, y)
    train = kcnn.data.train_pipeline(source, model.metadata["preprocessing"],
                                     batch_size=32, augment=kcnn.data.Augment(), seed=0)
    model.fit(train)

The package stands alone: it uses TensorFlow's tf.data and image ops (on every
Keras backend) and never imports kcnn's models or training code.
"""

from kcnn.data import augment
from kcnn.data.augment import Augment
from kcnn.data.digits import load_digits
from kcnn.data.pipeline import (EpochOrder, class_counts, eval_pipeline, mean_std, preview,
                                train_pipeline)
from kcnn.data.sources import Source, load, load_with_validation

__all__ = ["Augment", "EpochOrder", "Source", "augment", "class_counts", "eval_pipeline", "load",
           "load_with_validation", "load_digits", "mean_std", "preview", "train_pipeline"]
