"""Training, evaluation and prediction on tf.data pipelines, on every backend."""

from kcnn.optimizers import SGD, AdamW
from kcnn.training.ema import ModelEMA
from kcnn.training.evaluate import evaluate, predict
from kcnn.training.recipes import RECIPES, Recipe, get_recipe
from kcnn.training.train import train

__all__ = ["RECIPES", "AdamW", "ModelEMA", "Recipe", "SGD", "evaluate", "get_recipe", "predict",
           "train"]
