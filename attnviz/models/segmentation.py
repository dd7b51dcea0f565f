"""Segmentation networks: ResNet backbone + FCN or DANet head.

FCN head: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015, in torchvision's form (3x3 conv-BN-ReLU to C/4,
dropout, 1x1 classifier). DANet head: see `attnviz.modules.danet`.

The model takes RGB in [0, 1] (B, 3, H, W), normalises with the ImageNet mean
and std itself, and returns logits at the input size (bilinear upsampling).
`input_scale` < 1 resizes the input first: models trained at half resolution
on a CPU run at the scale they were trained at, whatever the photo's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnviz.data.camvid import NUM_CLASSES
from attnviz.models.backbone import ResNetBackbone
from attnviz.modules import ATTENTION_KINDS
from attnviz.modules.danet import DANetHead

__all__ = ["ModelConfig", "SegmentationModel", "FCNHead", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEADS = ("fcn", "danet")  # the builders: HEAD_BUILDERS, below the head classes


@dataclass(frozen=True)
class ModelConfig:
    head: str = "fcn"
    attention: str = "none"
    width: float = 1.0
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    output_stride: int = 8
    num_classes: int = NUM_CLASSES
    cam_form: str = "official"
    input_scale: float = 1.0
    dropout: float = 0.1

    def __post_init__(self):
        for name in ("width", "input_scale", "dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        for name in ("output_stride", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if (
            not isinstance(self.blocks, (list, tuple))
            or not self.blocks
            or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in self.blocks)
        ):
            raise ValueError(f"blocks must be a list of positive integers, got {self.blocks!r}")
        if not 0 < self.width <= 4:
            raise ValueError(f"width must be in (0, 4], got {self.width}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose from {', '.join(HEADS)}")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention {self.attention!r}; choose from {', '.join(ATTENTION_KINDS)}")
        if not 0 < self.input_scale <= 4:
            raise ValueError(f"input_scale must be in (0, 4], got {self.input_scale}")
        object.__setattr__(self, "blocks", tuple(self.blocks))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        if not isinstance(data, dict):
            raise ValueError(f"a model config is a JSON object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**data)


class FCNHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        inter = max(in_channels // 4, 8)
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, inter, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.block(x))


HEAD_BUILDERS = {
    "fcn": lambda channels, config: FCNHead(channels, config.num_classes, config.dropout),
    "danet": lambda channels, config: DANetHead(channels, config.num_classes, config.cam_form, config.dropout),
}
assert tuple(HEAD_BUILDERS) == HEADS


class SegmentationModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = ResNetBackbone(config.blocks, config.width, config.attention, config.output_stride)
        channels = self.backbone.out_channels
        self.head = HEAD_BUILDERS[config.head](channels, config)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _head_outputs(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The head's logits at feature resolution: the main ones first, then the auxiliary ones (DANet)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected RGB images (B, 3, H, W), got shape {tuple(image.shape)}")
        x = (image - self.mean) / self.std
        if self.config.input_scale != 1.0:
            x = F.interpolate(
                x,
                scale_factor=self.config.input_scale,
                mode="bilinear",
                align_corners=False,
                antialias=self.config.input_scale < 1,
            )
        out = self.head(self.backbone(x))
        return [out] if isinstance(out, torch.Tensor) else list(out)

    def forward_with_aux(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits, auxiliary logits) at the input size; aux is empty for FCN."""
        size = image.shape[-2:]
        upsampled = [
            F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in self._head_outputs(image)
        ]
        return upsampled[0], upsampled[1:]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The main logits at the input size (the auxiliary ones are not upsampled: at 768x1024 each would
        take 35 MB for nothing)."""
        return F.interpolate(self._head_outputs(image)[0], size=image.shape[-2:], mode="bilinear", align_corners=False)
