"""Look inside a model: per-layer costs and receptive fields, feature maps, Grad-CAM.

    kcnn.profile(model)                        # print it for the table
    kcnn.feature_maps(model, x, ["features_0"], path="maps.png")
    kcnn.gradcam(model, x)                     # (N, H, W) heatmaps in [0, 1]

All three read the model's functional graph and work on every backend.
"""

from kcnn.inspect.explain import explain, load_images
from kcnn.inspect.feature_maps import feature_maps
from kcnn.inspect.gradcam import gradcam
from kcnn.inspect.plotting import overlay
from kcnn.inspect.profile import Costs, Profile, model_costs, profile, without_weights

__all__ = ["Costs", "Profile", "explain", "feature_maps", "gradcam",
           "load_images", "model_costs", "overlay", "profile", "without_weights"]
