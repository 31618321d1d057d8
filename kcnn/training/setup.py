"""What every trainer decides the same way: the model's input size, the batch that fits.

`kcnn.train`, `kcnn.tune` and `kcnn.transfer.fine_tune` share these, so a model
trained, searched or fine-tuned on the same data sees the same images.
"""

import warnings

from kcnn.models._common import image_shape

SMALL = 64  # images at most this size train at their own size and are cached decoded


def model_size(model):
    """The larger side of the input a model was built for (SMALL + 1 if unknown)."""
    size = (getattr(model, "metadata", None) or {}).get("input_size") or [None, None]
    return max((s for s in size if s is not None), default=SMALL + 1)


def build_for_source(builder, source, **kwargs):
    """`(model, kwargs)`: `builder(**kwargs)` with the data's classes, at the data's size.

    Images of at most SMALL pixels a side (digits, MNIST, CIFAR) are trained at
    their own size, where the family allows it; larger ones, and sizes smaller
    than the family accepts, at the builder's default size (the pipeline resizes).
    The returned kwargs rebuild the same model (a search builds one per trial).
    """
    kwargs = {"classes": source.num_classes, **kwargs}
    image, _ = next(iter(source.dataset.take(1)))
    h, w = int(image.shape[0]), int(image.shape[1])
    if max(h, w) <= SMALL:
        own = {**kwargs, "input_shape": image_shape(h, w, source.channels)}
        try:
            return builder(**own), own
        except ValueError:
            pass  # smaller than the family allows: its default size instead
    return builder(**kwargs), kwargs


def batch_that_fits(batch_size, num_examples, replicas=1, *, data="data",
                    argument="batch_size"):
    """The batch size to use on `num_examples` examples split over `replicas`.

    Batches drop their remainder (fixed shapes for JAX and for the replicas), so
    a batch larger than the data would run no step at all and return the model
    untouched. With fewer examples than one batch, the largest batch that fits,
    rounded down to a multiple of the replica count, is used with a warning;
    with fewer examples than replicas there is no such batch: ValueError.
    An unknown size (None) keeps `batch_size`.
    """
    if num_examples is None or num_examples >= batch_size:
        return batch_size
    fitted = num_examples // replicas * replicas
    if fitted < 1:
        raise ValueError(
            f"{data} has {num_examples} examples, fewer than the {replicas} replicas that "
            f"each need one: no batch can be formed. Give {data} at least {replicas} "
            "examples, or train on fewer devices.")
    warnings.warn(
        f"{data} has {num_examples} examples, fewer than {argument}={batch_size}: using "
        f"batch size {fitted} instead, so that training takes steps.", stacklevel=3)
    return fitted
