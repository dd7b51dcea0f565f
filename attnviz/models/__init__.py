"""Segmentation models with a pluggable attention slot, a registry and checkpoint I/O."""
from attnviz.models.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from attnviz.models.registry import build_model, list_models, model_config
from attnviz.models.segmentation import ModelConfig, SegmentationModel

__all__ = ["CheckpointError", "list_checkpoints", "load_checkpoint", "save_checkpoint",
           "build_model", "list_models", "model_config", "ModelConfig", "SegmentationModel"]
