# %% [markdown]
# # 2. AlexNet
#
# Krizhevsky, Sutskever and Hinton's 2012 network won ImageNet by a wide margin and
# started the deep-learning era of computer vision. Its ingredients, each looked at
# here with kcnn: ReLU instead of tanh, Local Response Normalization, overlapping
# pooling, two GPUs (channel groups), dropout, and the training recipe (SGD with
# momentum and weight decay, learning rate divided by 10 on a plateau).
#
# Runs on any Keras backend (`KERAS_BACKEND`); `KCNN_NOTEBOOK_SMALL=1` trains on a
# few images for one or two epochs (a quick check that the code runs, not a lesson).

# %%
import os

import kcnn  # first: it orders the imports of keras, TensorFlow and torch
import keras
import matplotlib.pyplot as plt
import numpy as np

SMALL = os.environ.get("KCNN_NOTEBOOK_SMALL") == "1"
plt.rcParams["figure.dpi"] = 72
print(f"backend: {keras.backend.backend()}, {'small' if SMALL else 'full'} run")

# %% [markdown]
# ## The architecture, from the model itself
#
# `kcnn.alexnet(variant="paper")` is the 2012 layout: 227x227 input, LRN after the
# first two convolutions, overlapping 3x3 pooling with stride 2, and the
# two-GPU split as channel groups (`groups=2` in convolutions 2, 4 and 5, which see
# only the half of the channels "on their GPU"). `kcnn.profile` reads the graph:
# output shape, parameters, multiply-accumulates (MACs) and how far each layer sees
# (receptive field) and steps (jump) in input pixels. Built without allocating the
# weights, since only the graph is needed.

# %%
with kcnn.inspect.without_weights():
    paper = kcnn.alexnet(variant="paper")
table = kcnn.profile(paper)
print(table)

# %%
convs = [r for r in table.rows if r["type"] in ("Conv2D", "GroupedConv2D", "Dense")]
names = [r["name"] for r in convs]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
axes[0].bar(names, [r["params"] / 1e6 for r in convs])
axes[0].set_ylabel("parameters (millions)")
axes[1].bar(names, [r["macs"] / 1e6 for r in convs], color="tab:orange")
axes[1].set_ylabel("MACs per image (millions)")
for ax in axes:
    ax.tick_params(axis="x", rotation=45)
plt.tight_layout()
plt.show()
dense = sum(r["params"] for r in convs if r["type"] == "Dense")
print(f"the dense layers hold {dense / table.params:.0%} of the parameters; "
      f"the convolutions do {sum(r['macs'] for r in convs if r['type'] != 'Dense') / table.macs:.0%}"
      " of the multiply-accumulates")

# %% [markdown]
# ## Local Response Normalization
#
# The paper normalises each activation by its neighbours across channels:
# $b^i_{x,y} = a^i_{x,y} \big/ \big(k + \alpha \sum_{j=\max(0, i-n/2)}^{\min(N-1, i+n/2)} (a^j_{x,y})^2\big)^\beta$
# with $k=2$, $n=5$, $\alpha=10^{-4}$, $\beta=0.75$. Note: $\alpha$ multiplies the plain
# sum (TensorFlow's convention); PyTorch's and ONNX's `LRN` divide $\alpha$ by $n$.
# kcnn's layer against the formula written out in numpy and against TensorFlow's op:

# %%
import tensorflow as tf  # noqa: E402  (after kcnn: see the README on import order)

rng = np.random.default_rng(0)
a = rng.normal(scale=20.0, size=(2, 13, 13, 96)).astype("float32")
k, n, alpha, beta = 2.0, 5, 1e-4, 0.75

square = a.astype(np.float64) ** 2
window = np.zeros_like(square)
for i in range(a.shape[-1]):
    window[..., i] = square[..., max(0, i - n // 2):min(a.shape[-1], i + n // 2 + 1)].sum(-1)
formula = a / (k + alpha * window) ** beta

layer = kcnn.layers.LocalResponseNormalization(size=n, alpha=alpha, beta=beta, k=k)
ours = keras.ops.convert_to_numpy(layer(a))
tf_op = tf.nn.local_response_normalization(a, depth_radius=n // 2, bias=k, alpha=alpha,
                                           beta=beta).numpy()
print(f"max |kcnn - formula| = {np.abs(ours - formula).max():.2e}")
print(f"max |tf.nn.local_response_normalization - formula| = {np.abs(tf_op - formula).max():.2e}")

# %% [markdown]
# ## Overlapping pooling
#
# Pooling windows of 3 with stride 2 overlap by one pixel; the paper reports 0.4%
# lower top-1 error than non-overlapping 2x2 windows, which give the same output size.
# Overlap widens what each output sees, as the receptive fields show:

# %%
inputs = keras.Input((55, 55, 96))
for window, stride in [(3, 2), (2, 2)]:
    pooled = keras.Model(inputs, keras.layers.MaxPooling2D(window, stride)(inputs))
    row = kcnn.profile(pooled).rows[-1]
    print(f"{window}x{window} stride {stride}: output {row['output_shape']}, "
          f"each output sees {row['receptive_field']}x{row['receptive_field']} inputs")

# %% [markdown]
# ## ReLU against tanh
#
# The paper's Figure 1: a four-layer CNN with ReLUs reached 25% training error on
# CIFAR-10 six times faster than the same network with tanh units, which saturate.
# Here the same experiment at small scale: six 3x3 convolutions on the digits (10
# classes, 1437 training images), SGD with momentum, the same initial weights for
# both, counting the epochs until the training error first falls below 25%.

# %%
(x_train, y_train), (x_test, y_test) = kcnn.data.load_digits()
if SMALL:
    x_train, y_train, x_test, y_test = x_train[:192], y_train[:192], x_test[:64], y_test[:64]
x = (x_train / 255.0).astype("float32")


def small_cnn(activation):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((28, 28, 1))]
    for i in range(6):
        layers.append(keras.layers.Conv2D(32, 3, padding="same", activation=activation))
        if i in (1, 3):
            layers.append(keras.layers.MaxPooling2D(3, 2))
    return keras.Sequential(layers + [keras.layers.Flatten(), keras.layers.Dense(10)])


epochs = 2 if SMALL else 12
curves = {}
for activation in ("relu", "tanh"):
    model = small_cnn(activation)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y_train, batch_size=64, epochs=epochs, verbose=0)
    curves[activation] = 1 - np.array(history.history["accuracy"])


def epochs_to(errors, target=0.25):
    below = np.nonzero(errors < target)[0]
    return int(below[0]) + 1 if below.size else None


for activation, errors in curves.items():
    plt.plot(np.arange(1, epochs + 1), errors, label=activation)
    print(f"{activation}: training error below 25% after {epochs_to(errors)} epochs; "
          f"final {errors[-1]:.3f}")
plt.axhline(0.25, color="gray", linestyle=":")
plt.xlabel("epoch")
plt.ylabel("training error")
plt.legend()
plt.show()

# %% [markdown]
# At this scale the paper's six-fold gap does not appear: with Keras's Glorot
# initialisation, which scales the weights so that tanh units start in their linear
# range, a network this shallow trains about as fast with tanh (in this run even
# faster). The paper's advantage comes from saturation: tanh units pushed to ±1 pass
# almost no gradient, which happens in deeper networks, with larger weights and
# longer training; ReLUs never saturate for positive inputs. Measurements at small
# scale are a caution against carrying such claims over unchanged.

# %% [markdown]
# ## Training with the 2012 recipe
#
# `recipe="alexnet2012"` is the paper's: SGD with momentum 0.9, weight decay 5e-4
# added to the gradient (as the paper and `torch.optim.SGD` do), learning rate 0.01
# divided by 10 when the validation loss stops improving, dropout 0.5 in the
# classifier. The paper's 227x227 colour images become the digits upsampled to 99x99
# here, with batch 64, so that a CPU trains it in minutes; the architecture is
# otherwise the paper's. The paper's augmentation is random crops (of 99 from 113
# here) and flips plus PCA colour noise; digits are gray and a flipped digit is
# another symbol, so crops only.
#
# One departure: Keras's initialisation instead of the paper's (`init="paper"`:
# weights from N(0, 0.01), biases 1). The paper fed raw pixel values (0-255 minus
# the mean image), so tiny weights still gave usable activations; with inputs
# normalised to unit variance, as here, eight layers of N(0, 0.01) weights shrink
# the signal to almost nothing and the network sits at chance (10%), which a run
# with `init="paper"` shows.

# %%
model = kcnn.alexnet(variant="paper", input_shape=(99, 99, 1), classes=10)
history = kcnn.train(model, (x_train, y_train), recipe="alexnet2012", batch_size=64,
                     augment=kcnn.data.Augment(crop=True, flip=False),
                     epochs=1 if SMALL else 10, verbose=2)
result = kcnn.evaluate(model, (x_test, y_test))
print(f"test top-1 {result['top1']:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
for key in ("loss", "val_loss"):
    axes[0].plot(history.history[key], label=key)
for key in ("top1", "val_top1"):
    axes[1].plot(history.history[key], label=key)
for ax, label in zip(axes, ("loss", "top-1 accuracy")):
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.legend()
plt.show()

# %% [markdown]
# ## What the first layer learned, and where the model looks
#
# The first layer's 96 kernels (11x11, stride 4): on ImageNet they become edge and
# colour detectors, split between the two GPUs; on digits, after a few epochs, blob
# and stroke detectors. Then Grad-CAM: the gradient of the predicted class's score
# with respect to the last convolutional feature map, averaged per channel, weights
# the channels; the ReLU of the weighted sum shows where the evidence was.

# %%
kernels = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)[..., 0, :]
tiles = np.moveaxis(kernels, -1, 0)
fig, axes = plt.subplots(6, 16, figsize=(12, 4.5))
for ax, tile in zip(axes.ravel(), tiles):
    ax.imshow(tile, cmap="gray")
    ax.axis("off")
plt.show()

# %%
images = x_test[:6]
batch = kcnn.data.eval_pipeline(kcnn.data.load((images, y_test[:6])),
                                model.metadata["preprocessing"], batch_size=6)
inputs, _ = next(iter(batch))
heat = kcnn.gradcam(model, inputs.numpy())
predicted = kcnn.predict(model, images, top_k=1)
fig, axes = plt.subplots(2, 6, figsize=(12, 4.5))
for i in range(6):
    axes[0, i].imshow(images[i, ..., 0], cmap="gray")
    axes[0, i].set_title(f"true {y_test[i]}, said {predicted[i][0][0]}")
    axes[1, i].imshow(inputs.numpy()[i, ..., 0], cmap="gray")
    axes[1, i].imshow(heat[i], cmap="jet", alpha=0.45)
for ax in axes.ravel():
    ax.axis("off")
plt.show()
