"""Where training runs: one device, a tf.distribute strategy, or JAX data parallelism.

`tf.distribute` strategies work only on the TensorFlow backend (on JAX and
torch their scope is silently ignored), so they are refused elsewhere. On JAX,
`keras.distribution.DataParallel` shards each batch over all devices (and over
hosts after `keras.distribution.initialize()`).

`tf.distribute.MultiWorkerMirroredStrategy` is refused too: Keras 3's `fit`
fails under it (keras-team/keras#20585: an eager `strategy.reduce` of a data
batch in `TensorFlowTrainer._maybe_symbolic_build`, then scalar metrics reduced
along axis 0). Several machines train with JAX multi-host data parallelism,
`kcnn.training.multihost` (`kcnn multihost`).
"""

import contextlib

import keras


class Placement:
    """One device: no scope, the model as it is."""

    replicas = 1

    def scope(self):
        return contextlib.nullcontext()

    def adopt(self, model):
        return model


class TFStrategy(Placement):
    """A `tf.distribute.Strategy`: models are built and compiled in its scope."""

    def __init__(self, strategy):
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync

    def scope(self):
        return self.strategy.scope()

    def adopt(self, model):
        return _recreate(model)


class JaxDataParallel(Placement):
    """`keras.distribution.DataParallel` over all devices; it stays set after training."""

    def __init__(self):
        self.distribution = keras.distribution.DataParallel()
        self.replicas = len(keras.distribution.list_devices())
        keras.distribution.set_distribution(self.distribution)

    def adopt(self, model):
        return _recreate(model)


def _recreate(model):
    """A model built outside the strategy or distribution, re-created under it.

    Its variables must be created there (mirrored or sharded), so the model is
    rebuilt from its config and given the original's weights and metadata.
    """
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    if hasattr(model, "metadata"):
        clone.metadata = dict(model.metadata)
    return clone


def resolve(strategy):
    """A `Placement` for `strategy`: None, "mirrored", "data_parallel" or a tf strategy."""
    backend = keras.backend.backend()
    if strategy is None:
        return Placement()
    if strategy == "data_parallel":
        if backend != "jax":
            raise ValueError(
                f"strategy='data_parallel' (keras.distribution) runs on the JAX backend; "
                f"this is the {backend} backend. On TensorFlow use strategy='mirrored'."
            )
        return JaxDataParallel()
    if strategy == "mirrored" or _is_tf_strategy(strategy):
        if _is_multi_worker(strategy):
            raise ValueError(
                f"strategy={type(strategy).__name__} (tf.distribute.MultiWorkerMirroredStrategy)"
                f" is not supported: Keras 3's fit fails under it (keras-team/keras#20585). "
                f"To train on several machines use JAX multi-host data parallelism: "
                f"KERAS_BACKEND=jax with `kcnn multihost` (kcnn.training.multihost), one "
                f"process per machine; on one machine use strategy='mirrored'."
            )
        if backend != "tensorflow":
            raise ValueError(
                f"strategy={strategy!r} is a tf.distribute strategy, which works only on "
                f"the TensorFlow backend (on {backend} it would silently train on one "
                f"device). On JAX use strategy='data_parallel'."
            )
        if strategy == "mirrored":
            import tensorflow as tf

            strategy = tf.distribute.MirroredStrategy()
        return TFStrategy(strategy)
    raise ValueError(
        f"strategy must be None, 'mirrored' (TensorFlow), 'data_parallel' (JAX) or a "
        f"tf.distribute.Strategy; received strategy={strategy!r}."
    )


def _is_tf_strategy(strategy):
    return type(strategy).__module__.startswith("tensorflow") and hasattr(strategy, "scope")


def _is_multi_worker(strategy):
    """A MultiWorkerMirroredStrategy (CollectiveAllReduceStrategy), the
    experimental one included, told by class name (no TensorFlow import)."""
    return any(cls.__name__ in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
               for cls in type(strategy).__mro__)
