"""Pure-PyTorch SAM 2 image model (no Qt, no napari)."""

from sam_pets.model.build import build_model, count_parameters
from sam_pets.model.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from sam_pets.model.config import Sam2Config, config_names, get_config
from sam_pets.model.hub import ModelNotFoundError, resolve_checkpoint, resolve_model
from sam_pets.model.mask_decoder import MaskOutput
from sam_pets.model.sam2 import ImageFeatures, Sam2Image

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ImageFeatures",
    "MaskOutput",
    "ModelNotFoundError",
    "Sam2Config",
    "Sam2Image",
    "build_model",
    "config_names",
    "count_parameters",
    "get_config",
    "load_model",
    "read_checkpoint",
    "resolve_checkpoint",
    "resolve_model",
    "save_checkpoint",
]
