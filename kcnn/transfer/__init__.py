"""Transfer learning: new heads, frozen stages, discriminative rates, ensembles.

    import kcnn
    from kcnn import transfer

    # one call: new head for the folder's classes, then gradual unfreezing
    history = transfer.fine_tune("runs/train/model.keras", "my_images/", epochs=6)

    # or step by step
    model = transfer.replace_classifier(backbone, ["cat", "dog"], dropout=0.2)
    transfer.stages(model)                 # {"conv1": [...], "layer1": [...], ...}
    transfer.freeze(model)                 # train the head only
    transfer.unfreeze(model, last=1)       # ... and the last stage
    opt = transfer.discriminative_optimizer(model, keras.optimizers.AdamW(1e-3),
                                            backbone=0.1)
    transfer.fit_gradually(model, train_ds, epochs=6, optimizer=opt,
                           schedule=transfer.gradual_schedule(model, 6),
                           loss="sparse_categorical_crossentropy")

    voter = transfer.ensemble([model_a, model_b, model_c])  # mean probabilities
    ten = transfer.tta(model, "ten_crop")                    # the paper's 10 crops

Everything runs on the TensorFlow, JAX and PyTorch backends.
"""

from kcnn import _lazy
from kcnn.transfer.ensemble import AugmentedViews, ViewMean, ensemble, tta
from kcnn.transfer.head import outputs_probabilities, replace_classifier
from kcnn.transfer.optimizer import DiscriminativeOptimizer, discriminative_optimizer
from kcnn.transfer.stages import (features_layer, freeze, gradual_schedule, head_layers,
                                  set_trainable, stages, unfreeze)

# fine_tune reads its data through kcnn.data's tf.data pipelines, which load
# TensorFlow: it is imported on first use, so that the rest of the package,
# whose layers and optimizer `import kcnn` registers, loads no TensorFlow.
__getattr__, __dir__ = _lazy.attach(__name__, {
    "fine_tune": "kcnn.transfer.finetune:fine_tune",
    "fit_gradually": "kcnn.transfer.finetune:fit_gradually",
})

__all__ = ["AugmentedViews", "DiscriminativeOptimizer", "ViewMean",
           "discriminative_optimizer", "ensemble", "features_layer", "fine_tune",
           "fit_gradually", "freeze", "gradual_schedule", "head_layers",
           "outputs_probabilities", "replace_classifier", "set_trainable", "stages",
           "tta", "unfreeze"]
