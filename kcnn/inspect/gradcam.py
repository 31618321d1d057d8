"""Grad-CAM (Selvaraju et al., 2017): where a classifier looked, on every backend.

For a class c with score y_c (the logit, before the softmax) and a feature map
A with channels k, the map is

    L_c = ReLU(sum_k alpha_k A_k),    alpha_k = mean over positions of dy_c / dA_k,

brought to the input's resolution by bilinear interpolation (half-pixel
centres, as `tf.image.resize` and torch's `interpolate(align_corners=False)`)
and divided by its maximum.

Keras 3 has no common autodiff, so the one gradient is taken in the active
backend's own: `tf.GradientTape`, `jax.grad` or `torch.autograd.grad`. The
model is split at A into two functional models that share its layers: one from
the image to A, one from (the image, A) to the scores. The second takes A as an
input, so the derivative is with respect to A alone, while paths that bypass A
(residual shortcuts) still see the image.
"""

import keras
import numpy as np

from kcnn import _keras_internal, checks
from kcnn.inspect import _graph
from kcnn.loading import as_model


def gradcam(model, images, class_index=None, layer=None, batch_size=16):
    """Grad-CAM heatmaps of `images`, at their resolution, each with maximum 1.

    Args:
        model: a functional Keras classifier with one image input (a kcnn
            model, or one loaded from a `.keras` file).
        images: what the model takes: a float array (N, ...) in the model's
            input layout and preprocessing, or a single example without the
            batch axis.
        class_index: the class to explain: None (each image's predicted class),
            an int for every image, or one int per image.
        layer: the name of the layer whose output is the feature map (or the
            layer); default: the last convolution, followed through the batch
            norm, activation and merge layers after it that keep its size.
        batch_size: images per gradient computation.

    Returns:
        float32 array (N, height, width) in [0, 1]: each map divided by its
        maximum (all zeros where no position has a positive weight).

    The score is the input of the model's final activation layer (kcnn keeps
    the softmax as a separate layer), or the first output if there is none.
    """
    model = as_model(model)
    graph_input = _graph.single_input(model, "gradcam")
    fmt = _graph.data_format(model)
    x = _graph.check_images(images, graph_input, "images")
    checks.positive_int("batch_size", batch_size)
    feature = (_graph.default_feature_map(model) if layer is None
               else _graph.resolve_layer(model, layer, "layer"))
    if _graph.spatial(feature.shape, fmt) is None:
        raise ValueError(
            f"layer={_keras_internal.producer(feature).name!r} has output shape "
            f"{tuple(feature.shape)}, not a feature map (batch, height, width, "
            f"channels in {fmt}): Grad-CAM needs a convolutional layer's output."
        )
    score = _score_tensor(model)
    if not _graph.depends_on(score, feature):
        raise ValueError(
            f"layer={_keras_internal.producer(feature).name!r} does not lead to the "
            f"first output of {model.name!r}, whose class scores Grad-CAM explains."
        )
    features_model = keras.Model(graph_input, feature)
    head = keras.Model([graph_input, feature], score)
    classes = int(score.shape[-1])
    indices = _check_classes(class_index, len(x), classes)
    if keras.backend.backend() not in _GRADIENTS:
        raise ValueError(f"gradcam supports the tensorflow, jax and torch backends; the "
                         f"active backend is {keras.backend.backend()!r}.")
    gradient = _GRADIENTS[keras.backend.backend()](features_model, head)
    maps = []
    for start in range(0, len(x), batch_size):
        xb = keras.ops.convert_to_tensor(x[start:start + batch_size])
        onehot = None if indices is None else keras.ops.convert_to_tensor(
            np.eye(classes, dtype="float32")[indices[start:start + batch_size]])
        a, grads = gradient(xb, onehot)
        maps.append(_weighted_map(_numpy(a), _numpy(grads), fmt))
    cams = np.concatenate(maps)
    size = _graph.spatial(x.shape, fmt)
    cams = np.maximum(resize_bilinear(cams, size), 0.0)
    peak = cams.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cams / np.where(peak > 0, peak, 1.0), 0.0).astype("float32")


def resize_bilinear(maps, size):
    """(N, h, w) maps to (N, height, width): bilinear, half-pixel centres, edges clamped.

    As `tf.image.resize(method="bilinear", antialias=False)` and torch's
    `interpolate(mode="bilinear", align_corners=False)` compute it when
    enlarging; the same size gives the maps back unchanged.
    """
    rows = _interpolation_matrix(maps.shape[1], size[0])
    cols = _interpolation_matrix(maps.shape[2], size[1])
    return np.einsum("ih,nhw,jw->nij", rows, np.asarray(maps, np.float64), cols)


def _interpolation_matrix(n_in, n_out):
    """The (n_out, n_in) matrix of 1-D linear interpolation with half-pixel centres."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = centres - low
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), low), 1 - frac)
    np.add.at(matrix, (np.arange(n_out), high), frac)
    return matrix


def _weighted_map(a, grads, fmt):
    """ReLU(sum_k alpha_k A_k) with alpha_k the spatial mean of the gradient, in float64."""
    a = a.astype(np.float64)
    grads = grads.astype(np.float64)
    if fmt == "channels_first":
        a, grads = a.transpose(0, 2, 3, 1), grads.transpose(0, 2, 3, 1)
    alpha = grads.mean(axis=(1, 2))
    return np.maximum(np.einsum("nhwk,nk->nhw", a, alpha), 0.0)


def _selected_score(scores, onehot):
    """The sum of each image's score for its class (onehot None: its top class)."""
    scores = keras.ops.cast(scores, "float32")
    if onehot is None:
        onehot = keras.ops.one_hot(keras.ops.argmax(scores, axis=-1), scores.shape[-1])
    return keras.ops.sum(scores * onehot)


# One function per backend: (features_model, head) -> gradient(x, onehot), which
# returns the feature map A of a batch and d(selected score) / dA.

def _tensorflow_gradient(features_model, head):
    import tensorflow as tf

    def gradient(x, onehot):
        a = features_model(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(a)
            value = _selected_score(head([x, a], training=False), onehot)
        return a, tape.gradient(value, a)

    return gradient


def _jax_gradient(features_model, head):
    """Compiled as one XLA program: eager JAX dispatches op by op, 2-3x slower here."""
    import jax

    def state(model):
        return ([v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables])

    def run(states, x, onehot):
        (f_trainable, f_other), (h_trainable, h_other) = states
        a, _ = features_model.stateless_call(f_trainable, f_other, x, training=False)

        def selected(a):
            scores, _ = head.stateless_call(h_trainable, h_other, [x, a], training=False)
            return _selected_score(scores, onehot)

        return a, jax.grad(selected)(a)

    compiled = jax.jit(run)
    # The variables' current values at each call, passed in rather than baked
    # into the compiled program.
    return lambda x, onehot: compiled((state(features_model), state(head)), x, onehot)


def _torch_gradient(features_model, head):
    import torch

    def gradient(x, onehot):
        with torch.no_grad():
            a = features_model(x, training=False)
        a = a.detach().requires_grad_(True)
        (grads,) = torch.autograd.grad(_selected_score(head([x, a], training=False), onehot), a)
        return a.detach(), grads

    return gradient


_GRADIENTS = {"tensorflow": _tensorflow_gradient, "jax": _jax_gradient,
              "torch": _torch_gradient}


def _score_tensor(model):
    """The first output's pre-activation scores (the logits before a softmax)."""
    output = _graph.functional(model).outputs[0]
    if isinstance(_keras_internal.producer(output),
                  (keras.layers.Activation, keras.layers.Softmax)):
        return _keras_internal.producing_node(output).input_tensors[0]
    return output


def _check_classes(class_index, n, classes):
    if class_index is None:
        return None
    values = np.atleast_1d(np.asarray(class_index))
    if not np.issubdtype(values.dtype, np.integer) or values.ndim != 1 or \
            len(values) not in (1, n) or values.min() < 0 or values.max() >= classes:
        raise ValueError(
            f"class_index must be None (the predicted class), an integer in [0, "
            f"{classes}) or one such integer per image ({n}); received "
            f"class_index={class_index!r}."
        )
    return np.broadcast_to(values, (n,))


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))
