"""ResNet backbone (BasicBlocks) with an attention slot in every block.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016;
output stride 8 by dilation as in DANet (Fu et al., CVPR 2019) and DeepLab:
stages 3 and 4 keep stride 1 and dilate their 3x3 convs by 2 and 4.

The attention module sits where SE, ECA and CBAM put it: on the residual
branch after the second BN, before the addition (out = relu(x + attn(F(x)))).

Parameter names follow torchvision's ResNet (conv1, bn1, layer1.0.conv1, ...,
downsample.0/1) so that ImageNet weights from torchvision or timm load by name
at width 1.0 (see `attnviz.models.pretrained`).

Differences from the paper: a width multiplier scales every stage (64, 128,
256, 512) * width, for models small enough to train on a CPU; the first block
of a dilated stage uses half its stage's dilation, as in torchvision's
replace_stride_with_dilation.
"""

from __future__ import annotations

from torch import nn

from attnviz.modules import make_attention

__all__ = ["BasicBlock", "ResNetBackbone", "stage_channels"]


def stage_channels(width: float) -> list[int]:
    """Output channels of the four stages: round((64, 128, 256, 512) * width), at least 8."""
    return [max(8, int(round(c * width))) for c in (64, 128, 256, 512)]


class BasicBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
        attention: str = "none",
    ):
        super().__init__()
        first_dilation = first_dilation or dilation
        self.conv1 = nn.Conv2d(
            in_channels, channels, 3, stride, padding=first_dilation, dilation=first_dilation, bias=False
        )
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.attn = make_attention(attention, channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """ResNet-18/34-style backbone returning the last stage's features.

    blocks: blocks per stage, (2, 2, 2, 2) = ResNet-18. output_stride: 8, 16 or 32.
    """

    def __init__(self, blocks=(2, 2, 2, 2), width: float = 1.0, attention: str = "none", output_stride: int = 8):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        channels = stage_channels(width)
        self.out_channels = channels[-1]
        self.conv1 = nn.Conv2d(3, channels[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        # (stride, dilation) of stages 2..4 for each output stride
        plan = {32: [(2, 1), (2, 1), (2, 1)], 16: [(2, 1), (2, 1), (1, 2)], 8: [(2, 1), (1, 2), (1, 4)]}
        stage_plan = [(1, 1)] + plan[output_stride]
        in_ch, prev_dilation = channels[0], 1
        for index, (n_blocks, ch, (stride, dilation)) in enumerate(zip(blocks, channels, stage_plan)):
            layers = [BasicBlock(in_ch, ch, stride, dilation, first_dilation=prev_dilation, attention=attention)]
            layers += [BasicBlock(ch, ch, 1, dilation, attention=attention) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))
            in_ch, prev_dilation = ch, dilation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
