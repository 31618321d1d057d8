"""Batch normalization with the backend's fused kernel where it is the same thing."""

__all__ = ["BatchNormalization"]

import keras

# The input dtypes the fused paths take. Keras computes batch norm in
# float32 for these (it upcasts float16 and bfloat16 first), and so do they.
_FLOAT32_COMPUTE = ("float16", "bfloat16", "float32")


@keras.saving.register_keras_serializable(package="kcnn")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, with one fused kernel on TensorFlow and torch.

    The same arguments, weights, config, training behaviour and formula:
    `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, with the batch's
    mean and biased variance in training (the moving statistics then become
    `moving * momentum + batch * (1 - momentum)`), and the moving statistics
    in inference or when the layer is frozen. Only the kernels differ:

    - TensorFlow, inference: `FusedBatchNormV3` (one pass over the
      activations) instead of Keras's `tf.nn.batch_normalization` (several),
      for float32 channels-last input; MobileNetV2 and ResNet-50 infer
      measurably faster on a CPU (benchmarks/README.md).
    - torch, training: `torch.nn.functional.batch_norm` (one kernel forward,
      one backward) instead of Keras's element-wise passes; inference: one
      `torch.addcmul` with torch's formula (`_torch_inference`),
      for 4-D channels-last or channels-first input; in a kcnn model's
      inference it writes into the convolution output it reads
      (`kcnn.layers.inplace`). Measured in one process, interleaved, on 2 CPUs
      (benchmarks/batchnorm.py): a (16, 56, 56, 256) layer trains (forward +
      backward) in 0.3-0.4x of Keras's time (and inferred in 0.6-0.7x with
      torch's `batch_norm`, before the addcmul); a ResNet-50 (MobileNetV2) train
      step at batch 16, 224x224, in 0.65x (0.46x) of the time with Keras's
      path. Channels-last
      input goes in as a permuted view, which torch reads in its
      `channels_last` memory format: no copy. torch's own running-statistics
      update uses the unbiased variance, so it only writes throwaway buffers
      (momentum 1: the batch's statistics), and the layer updates its moving
      statistics from those with Keras's expression and biased variance.

    On JAX it is Keras's layer: one-pass moments (the mean of x and of x * x,
    less accurate than Keras's two passes) took 0.8x of Keras's time for the
    layer under `jax.jit`, but 0.95-0.98x for a ResNet-50 train step (batch
    16, 160x160), within the noise: not worth it (benchmarks/batchnorm.py).

    float16 and bfloat16 inputs are computed in float32, as Keras does. Masks,
    renorm, synchronized statistics and other shapes and dtypes take Keras's
    path. Outputs, gradients and moving statistics agree with Keras's layer
    to float32 rounding (`tests/layers/test_normalization.py`).
    """

    def call(self, inputs, training=None, mask=None):
        if self._fused_inference(inputs, training, mask):
            import tensorflow as tf

            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=self.epsilon,
                is_training=False, data_format="NHWC")
            return outputs
        if self._fused_torch(inputs, mask):
            return self._torch_call(inputs, bool(training and self.trainable))
        return super().call(inputs, training=training, mask=mask)

    def _fused_inference(self, inputs, training, mask):
        return (keras.backend.backend() == "tensorflow"
                and not (training and self.trainable)
                and mask is None and not self.renorm
                and self.center and self.scale
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and keras.backend.standardize_dtype(inputs.dtype) == "float32"
                and self.compute_dtype == "float32")

    def _fused_torch(self, inputs, mask):
        return (keras.backend.backend() == "torch"
                and mask is None and not self.renorm and not self.synchronized
                and len(inputs.shape) == 4 and self.axis % 4 in (1, 3)
                and keras.backend.standardize_dtype(inputs.dtype) in _FLOAT32_COMPUTE
                and self.variable_dtype == "float32")

    def _torch_inference(self, x, out=None):
        """The layer in inference on float32 torch tensor `x`, into `out` if given
        (`out=x`: into `x` itself, `kcnn.layers.inplace`).

        `x * a + b` with `a = gamma / sqrt(moving_variance + epsilon)` and
        `b = beta - moving_mean * a` per channel, which is the formula of torch's
        own CPU kernel, as one `torch.addcmul` over `x` in its own layout. torch's
        `batch_norm` on a channels-last view took 2-3x this time for some of
        MobileNetV2's shapes ((16, 112, 112, 32) and (16, 56, 56, 144), 2 CPUs).
        """
        import torch

        mean = keras.ops.convert_to_tensor(self.moving_mean)
        scale = torch.rsqrt(keras.ops.convert_to_tensor(self.moving_variance) + self.epsilon)
        if self.scale:
            scale = scale * keras.ops.convert_to_tensor(self.gamma)
        shift = -mean * scale
        if self.center:
            shift = shift + keras.ops.convert_to_tensor(self.beta)
        shape = [1] * x.ndim
        shape[self.axis % x.ndim] = -1
        if out is None:
            return torch.addcmul(shift.view(shape), x, scale.view(shape))
        return torch.addcmul(shift.view(shape), x, scale.view(shape), out=out)

    def _torch_call(self, inputs, training):
        import torch

        x = keras.ops.cast(inputs, "float32")  # also a NumPy array, from stateless_call
        channels_last = self.axis % 4 == 3
        if channels_last:
            x = x.permute(0, 3, 1, 2)  # a view in torch's channels_last memory format
        gamma = keras.ops.convert_to_tensor(self.gamma) if self.scale else None
        beta = keras.ops.convert_to_tensor(self.beta) if self.center else None
        moving_mean = keras.ops.convert_to_tensor(self.moving_mean)
        moving_variance = keras.ops.convert_to_tensor(self.moving_variance)
        count = x.numel() // x.shape[1]
        if training and count > 1:  # torch refuses one value per channel; Keras's path below
            mean = torch.zeros_like(moving_mean)
            unbiased = torch.zeros_like(moving_variance)
            outputs = torch.nn.functional.batch_norm(
                x, mean, unbiased, gamma, beta, training=True, momentum=1.0,
                eps=self.epsilon)
            variance = unbiased * ((count - 1) / count)
            self.moving_mean.assign(
                moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum))
        elif training:
            return super().call(inputs, training=True)
        else:
            return keras.ops.cast(self._torch_inference(keras.ops.cast(inputs, "float32")),
                                  self.compute_dtype)
        if channels_last:
            outputs = outputs.permute(0, 2, 3, 1)
        return keras.ops.cast(outputs, self.compute_dtype)
