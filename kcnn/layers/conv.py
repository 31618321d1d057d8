"""A grouped 2D convolution that is fast on every backend."""

__all__ = ["GroupedConv2D"]

import keras
from keras import ops

# The one place that picks the formulation: backends whose own grouped
# convolution is the fast one on CPU. TensorFlow (which runs grouped
# convolutions through XLA on CPU) and JAX are several times slower with
# groups=2 than with the split form, and far slower with many groups; torch is
# faster natively. The measurements are in benchmarks/README.md.
_NATIVE_GROUPS_BACKENDS = ("torch",)


def grouped_conv(inputs, kernel, groups, *, strides=1, padding="valid",
                 data_format=None, dilation_rate=1, native=None):
    """`ops.conv` with `groups` groups, natively or as split-and-concatenate.

    `kernel` has Conv2D's grouped layout, (kh, kw, in_channels // groups,
    filters): group g sees input channels [g * in/groups, (g + 1) * in/groups)
    and makes filters [g * filters/groups, (g + 1) * filters/groups). Both forms
    compute exactly that. `native=None` picks the fast form for this backend.
    """
    if data_format is None:
        data_format = keras.config.image_data_format()
    if native is None:
        native = keras.backend.backend() in _NATIVE_GROUPS_BACKENDS
    conv_args = dict(strides=strides, padding=padding, data_format=data_format,
                     dilation_rate=dilation_rate)
    if groups == 1 or native:
        return ops.conv(inputs, kernel, **conv_args)
    axis = -1 if data_format == "channels_last" else 1
    parts = zip(ops.split(inputs, groups, axis=axis),
                ops.split(kernel, groups, axis=-1))
    return ops.concatenate([ops.conv(x, k, **conv_args) for x, k in parts],
                           axis=axis)


@keras.saving.register_keras_serializable(package="kcnn")
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose grouped convolution runs fast on every backend.

    The same arguments, weights (one kernel of shape (kh, kw, in_channels //
    groups, filters) and one bias) and outputs as `Conv2D(groups=groups)`, so
    parameter counts, weight files and `.keras` files do not depend on the
    backend. Only the computation differs: on TensorFlow and JAX the groups run
    as separate convolutions on the channel slices, concatenated; on torch as
    torch's native grouped convolution. On CPU each backend's choice trains
    faster than the other form, by a wide margin on TensorFlow and JAX, more
    so as the groups grow (training-step times of both forms on each backend:
    benchmarks/README.md). Outputs of the two forms agree within 1e-5.
    """

    def convolution_op(self, inputs, kernel):
        return grouped_conv(inputs, kernel, self.groups,
                            strides=list(self.strides), padding=self.padding,
                            data_format=self.data_format,
                            dilation_rate=self.dilation_rate)
