"""Local Response Normalization (Krizhevsky, Sutskever and Hinton, 2012)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kcnn")
class LocalResponseNormalization(keras.layers.Layer):
    """b_c = a_c / (k + alpha * sum_{j=c-n/2}^{c+n/2} a_j^2) ** beta.

    The sum runs over `size` adjacent channels, channels outside the range count
    as zero, and alpha multiplies the raw sum (the paper's convention, and
    `tf.nn.local_response_normalization`'s).
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.data_format = keras.config.image_data_format() if data_format is None else data_format

    def call(self, inputs):
        axis = -1 if self.data_format == "channels_last" else 1
        x = ops.cast(inputs, "float32")
        sq = ops.square(x)
        half = self.size // 2
        pad = [[0, 0]] * len(x.shape)
        pad[axis] = [half, self.size - 1 - half]
        padded = ops.pad(sq, pad)
        n = x.shape[axis]
        window = sum(ops.take(padded, ops.arange(i, i + n), axis=axis)
                     for i in range(self.size))
        y = x / ops.power(self.k + self.alpha * window, self.beta)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha,
                "beta": self.beta, "k": self.k, "data_format": self.data_format}
