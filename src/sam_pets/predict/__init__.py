"""Interactive prediction on top of :mod:`sam_pets.model` (numpy in, numpy out)."""

from sam_pets.model.device import select_device
from sam_pets.predict.cache import FeatureCache
from sam_pets.predict.predictor import ImagePredictor, Prediction

__all__ = ["FeatureCache", "ImagePredictor", "Prediction", "select_device"]
