# %% [markdown]
# # 3. The architecture zoo: LeNet-5 to EfficientNet
#
# Twenty-five years of classification networks, all built by kcnn with torchvision's
# layouts. Each family added one idea; the table below measures what it cost:
# parameters, multiply-accumulates (MACs) per image and depth, from `kcnn.profile`
# reading each model's graph (built without allocating its weights, so even
# VGG-19's 144 million parameters take no memory here).
#
# Runs on any Keras backend; `KCNN_NOTEBOOK_SMALL=1` profiles one model per family.

# %%
import os

import kcnn  # first: it orders the imports of keras, TensorFlow and torch
import keras
import matplotlib.pyplot as plt

SMALL = os.environ.get("KCNN_NOTEBOOK_SMALL") == "1"
plt.rcParams["figure.dpi"] = 72
print(f"backend: {keras.backend.backend()}, {'small' if SMALL else 'full'} run")

FAMILIES = {
    "LeNet-5 (1998)": ["lenet5"],
    "AlexNet (2012)": ["alexnet"],
    "VGG (2014)": ["vgg11", "vgg16", "vgg19"],
    "GoogLeNet (2014)": ["googlenet"],
    "ResNet (2015)": ["resnet18", "resnet50", "resnet152"],
    "DenseNet (2017)": ["densenet121", "densenet201"],
    "MobileNetV2 (2018)": ["mobilenet_v2"],
    "EfficientNet (2019)": ["efficientnet_b0", "efficientnet_b3", "efficientnet_b7"],
}
if SMALL:
    FAMILIES = {family: names[:1] for family, names in FAMILIES.items()}

# %% [markdown]
# ## Parameters, MACs and depth
#
# Depth counts the layers with weights on the longest path (convolutions and dense
# layers), as the papers do ("VGG-16" has 16). MACs are at each model's reference
# input size (224x224 for most; EfficientNets grow theirs: B3 300, B7 600) and match
# torchvision's published figures.

# %%
def depth(table):
    return sum(1 for row in table.rows
               if row["type"] in ("Conv2D", "GroupedConv2D", "DepthwiseConv2D", "Dense")
               and "downsample" not in row["name"] and "aux" not in row["name"])


rows = []
for family, names in FAMILIES.items():
    for name in names:
        table = kcnn.profile(name)
        rows.append((family, name, table.input_shape, table.trainable_params, table.macs,
                     depth(table)))

print(f"{'model':<17} {'input':<14} {'parameters':>13} {'GMACs':>8} {'weighted layers':>16}")
for family, name, shape, params, macs, layers in rows:
    print(f"{name:<17} {str(shape):<14} {params:>13,} {macs / 1e9:>8.4f} {layers:>16}")

# %%
fig, ax = plt.subplots(figsize=(9, 6))
for family, names in FAMILIES.items():
    points = [r for r in rows if r[0] == family]
    ax.scatter([r[4] / 1e9 for r in points], [r[3] / 1e6 for r in points], s=60,
               label=family)
    for r in points:
        ax.annotate(r[1], (r[4] / 1e9, r[3] / 1e6), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("GMACs per image (log)")
ax.set_ylabel("parameters, millions (log)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## What each family introduced
#
# - **LeNet-5**: convolution, subsampling (pooling) and a small classifier; tanh units.
# - **AlexNet**: ReLU, dropout, overlapping pooling, LRN, data augmentation, two GPUs.
#   Most of its parameters are in the dense classifier (see notebook 2).
# - **VGG**: only 3x3 convolutions, stacked: two 3x3 layers see as far as one 5x5 with
#   fewer parameters and one more non-linearity. Deep and uniform, and expensive.
# - **GoogLeNet**: the inception module runs 1x1, 3x3, 5x5 convolutions and pooling side
#   by side and concatenates them; 1x1 convolutions first reduce the channels, which is
#   why it has 12x fewer parameters than AlexNet while being deeper.
# - **ResNet**: residual connections `y = F(x) + x` make very deep networks trainable;
#   bottleneck blocks (1x1, 3x3, 1x1) keep the cost down.
# - **DenseNet**: each layer receives the concatenation of all earlier feature maps in
#   its block: strong feature reuse with few parameters.
# - **MobileNetV2**: inverted residuals: expand with a 1x1 convolution, filter each
#   channel separately (depthwise 3x3), project back with a linear 1x1.
# - **EfficientNet**: MobileNetV2's blocks with squeeze-and-excitation (channel attention
#   from globally pooled features), scaled in depth, width and input size together.
#
# The blocks, from the models' own graphs:

# %%
def block(name, prefix):
    with kcnn.inspect.without_weights():
        model = kcnn.create_model(name)
    table = kcnn.profile(model)
    print(f"{name}: {prefix}")
    for row in table.rows:
        if row["name"].startswith(prefix):
            print(f"  {row['name']:<32} {row['type']:<22} {str(row['output_shape']):<16}"
                  f" {row['params']:>9,}")


block("googlenet", "inception3a")
block("resnet50", "layer1_0_")
block("mobilenet_v2", "features_2_")

# %% [markdown]
# ## Where torchvision's layouts depart from the papers
#
# kcnn follows torchvision layer for layer, so that its weights load; where that differs
# from the papers:
#
# - **AlexNet**: torchvision's is the single-tower "one weird trick" variant (64, 192,
#   384, 256, 256 filters, no LRN, 224 input, adaptive pooling to 6x6);
#   `kcnn.alexnet(variant="paper")` is the 2012 layout (96, 256, 384, 384, 256 filters,
#   LRN, 227 input, two channel groups). Compare their parameters and MACs below.
# - **GoogLeNet**: torchvision's uses batch normalisation after every convolution (the
#   paper predates it) and a 3x3 convolution where the paper's "5x5" branch was.
# - **ResNet**: torchvision's is "v1.5": the stride-2 of a downsampling bottleneck is in
#   the 3x3 convolution, not the first 1x1 (slightly more accurate and costly).
# - **VGG**: adaptive average pooling to 7x7 before the classifier, so other input
#   sizes work.

# %%
for variant in ("torchvision", "paper"):
    with kcnn.inspect.without_weights():
        model = kcnn.alexnet(variant=variant)
    table = kcnn.profile(model)
    print(f"alexnet variant={variant!r:<14} input {table.input_shape}: "
          f"{table.trainable_params:,} parameters, {table.macs / 1e9:.3f} GMACs")
