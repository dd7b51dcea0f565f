"""Segmentation models with a pluggable attention slot, a registry and checkpoint I/O."""

from attnviz.models.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from attnviz.models.registry import build_model, list_models, model_config
from attnviz.models.segmentation import ModelConfig, SegmentationModel
from attnviz.models.user import UserModel, UserModelError, UserModelSpec, load_model_specs, load_user_model

__all__ = [
    "CheckpointError",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
    "build_model",
    "list_models",
    "model_config",
    "ModelConfig",
    "SegmentationModel",
    "UserModel",
    "UserModelError",
    "UserModelSpec",
    "load_model_specs",
    "load_user_model",
]
