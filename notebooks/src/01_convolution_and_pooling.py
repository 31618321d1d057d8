# %% [markdown]
# # 1. Convolution and pooling
#
# A convolutional layer slides a small kernel over an image and, at each position,
# multiplies the kernel with the patch under it and sums. Pooling then summarises
# neighbourhoods. This lesson computes both by hand, checks the hand computation
# against Keras, applies classic fixed kernels to a real photo, and counts why
# convolutions need so few parameters.
#
# Runs on any Keras backend (`KERAS_BACKEND`); `KCNN_NOTEBOOK_SMALL=1` uses a
# smaller crop of the photo.

# %%
import os

import kcnn  # first: it orders the imports of keras, TensorFlow and torch
import keras
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_sample_image

SMALL = os.environ.get("KCNN_NOTEBOOK_SMALL") == "1"
plt.rcParams["figure.dpi"] = 72
print(f"backend: {keras.backend.backend()}, {'small' if SMALL else 'full'} run")

photo = load_sample_image("china.jpg")  # a real photo that scikit-learn ships
if SMALL:
    photo = photo[100:228, 200:392]
gray = photo.astype("float32") @ np.array([0.299, 0.587, 0.114], "float32") / 255.0
print("photo", photo.shape, "grayscale", gray.shape)

# %% [markdown]
# ## A convolution by hand
#
# For a kernel $K$ of size $k \times k$ and an image $X$, the output at $(i, j)$ is
# $Y_{ij} = \sum_{u=0}^{k-1} \sum_{v=0}^{k-1} X_{i+u,\, j+v} \, K_{uv} + b$
# ("valid" padding, stride 1). Deep-learning libraries call this convolution; strictly
# it is a cross-correlation (the kernel is not flipped). Below, two loops over the
# kernel positions, against `keras.layers.Conv2D` with the same weights.

# %%
def convolve(image, kernel, bias=0.0):
    """Valid cross-correlation of a 2-D image with a 2-D kernel, by hand."""
    k = kernel.shape[0]
    h, w = image.shape[0] - k + 1, image.shape[1] - k + 1
    out = np.full((h, w), bias, dtype=np.float64)
    for u in range(k):
        for v in range(k):
            out += kernel[u, v] * image[u:u + h, v:v + w]
    return out


rng = np.random.default_rng(0)
kernel = rng.normal(size=(3, 3)).astype("float32")
bias = 0.5

conv = keras.layers.Conv2D(1, 3, padding="valid")
conv.build((None, *gray.shape, 1))
conv.set_weights([kernel[:, :, None, None], np.array([bias], "float32")])
keras_out = keras.ops.convert_to_numpy(conv(gray[None, :, :, None]))[0, :, :, 0]
hand_out = convolve(gray, kernel, bias)
print("output shape", hand_out.shape, "max |hand - Conv2D| =",
      float(np.abs(hand_out - keras_out).max()))

# %% [markdown]
# ## Classic fixed kernels
#
# Before networks learned their kernels, image processing chose them by hand. The
# first layer of a trained CNN ends up with many of the same kinds: smoothing,
# oriented edges, colour blobs.

# %%
KERNELS = {
    "blur (box 5x5)": np.full((5, 5), 1 / 25),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    "outline": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    "Sobel x (vertical edges)": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "Sobel y (horizontal edges)": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
}


def apply(kernel):
    k = np.asarray(kernel, "float32")[:, :, None, None]
    x = gray[None, :, :, None]
    return keras.ops.convert_to_numpy(keras.ops.conv(x, k, padding="same"))[0, :, :, 0]


fig, axes = plt.subplots(2, 4, figsize=(14, 6))
axes = axes.ravel()
axes[0].imshow(photo)
axes[0].set_title("photo")
axes[1].imshow(gray, cmap="gray")
axes[1].set_title("grayscale")
for ax, (name, kernel) in zip(axes[2:], KERNELS.items()):
    image = apply(kernel)
    low, high = np.percentile(image, [1, 99])  # the zero-padded border is an outlier
    ax.imshow(image, cmap="gray", vmin=low, vmax=high)
    ax.set_title(name)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Max pooling and average pooling
#
# Pooling keeps one number per window: the largest (max) or the mean (average). On a
# small matrix first, then on the photo's edge map: max pooling keeps the strongest
# edge response in each window, average pooling blurs it.

# %%
m = np.arange(16, dtype="float32").reshape(1, 4, 4, 1) % 7
print("input\n", m[0, :, :, 0])
for layer in (keras.layers.MaxPooling2D(2), keras.layers.AveragePooling2D(2)):
    out = keras.ops.convert_to_numpy(layer(m))[0, :, :, 0]
    print(type(layer).__name__, "\n", out)

edges = np.abs(apply(KERNELS["outline"]))[None, :, :, None]
pooled = {name: keras.ops.convert_to_numpy(layer(edges))[0, :, :, 0]
          for name, layer in [("max pool 4x4", keras.layers.MaxPooling2D(4)),
                              ("average pool 4x4", keras.layers.AveragePooling2D(4))]}
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
axes[0].imshow(edges[0, :, :, 0], cmap="gray")
axes[0].set_title(f"outline edges {edges.shape[1:3]}")
for ax, (name, image) in zip(axes[1:], pooled.items()):
    ax.imshow(image, cmap="gray")
    ax.set_title(f"{name} {image.shape}")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The output size
#
# A window of size $k$ with stride $s$ on an input of size $n$ padded by $p$ on each
# side gives $\lfloor (n + 2p - k) / s \rfloor + 1$ outputs. AlexNet's first layer:
# $n=227, k=11, s=4, p=0$ gives 55; its overlapping pooling ($k=3, s=2$) on 55 gives 27.
# The formula against the shapes Keras computes:

# %%
def output_size(n, k, s=1, p=0):
    return (n + 2 * p - k) // s + 1


cases = [(227, 11, 4, 0), (55, 3, 2, 0), (27, 5, 1, 2), (224, 7, 2, 3), (32, 3, 1, 1)]
print(f"{'n':>4} {'k':>3} {'s':>3} {'p':>3} {'formula':>8} {'Keras':>6}")
for n, k, s, p in cases:
    inputs = keras.Input((n, n, 1))
    x = keras.layers.ZeroPadding2D(p)(inputs) if p else inputs
    x = keras.layers.Conv2D(1, k, strides=s)(x)
    print(f"{n:4d} {k:3d} {s:3d} {p:3d} {output_size(n, k, s, p):8d} {x.shape[1]:6d}")

# %% [markdown]
# ## Why convolutions have so few parameters
#
# A 5x5 convolution with one input and one output channel has $5 \cdot 5 + 1 = 26$
# parameters whatever the image size: the same kernel is shared by every position. A
# dense layer that maps a 200x200 image to a 200x200 output connects every pixel to
# every output: $40000 \cdot 40000 + 40000$ parameters (6.4 GB of float32, which is
# why it is computed here, not built). Keras counts the same on a model small enough
# to build.

# %%
def dense_params(n_in, n_out):
    return n_in * n_out + n_out


def conv_params(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


side = 200
print(f"5x5 convolution on {side}x{side}: {conv_params(5, 1, 1):,} parameters")
print(f"dense {side}x{side} -> {side}x{side}: {dense_params(side**2, side**2):,} parameters")
print(f"ratio: {dense_params(side**2, side**2) / conv_params(5, 1, 1):,.0f}x")

small = 20  # the same two layers, built, at 20x20
inputs = keras.Input((small, small, 1))
conv_model = keras.Model(inputs, keras.layers.Conv2D(1, 5, padding="same")(inputs))
dense_model = keras.Model(inputs, keras.layers.Dense(small * small)(
    keras.layers.Flatten()(inputs)))
print(f"at {small}x{small}: Conv2D {conv_model.count_params()} "
      f"(formula {conv_params(5, 1, 1)}), Dense {dense_model.count_params():,} "
      f"(formula {dense_params(small**2, small**2):,})")
