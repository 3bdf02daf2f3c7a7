"""ResNet-22, pre-activation ("v2") variant: the trunk that sees one mammogram view.

Layer names (first_conv, layer_list.<stage>.<block>.{bn1,conv1,bn2,conv2,downsample.0},
final_bn) are those of the published checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_FILTERS = (16, 32, 64, 128, 256)
STAGE_STRIDES = (1, 2, 2, 2, 2)
BLOCKS_PER_STAGE = 2
FEATURES = STAGE_FILTERS[-1]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlockV2(nn.Module):
    """bn1 -> relu -> conv1 -> bn2 -> relu -> conv2, plus a shortcut.

    The shortcut is the raw input, or, when the block has a projection, the 1x1
    projection of the pre-activated input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, project: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        # prepare_classifier may fold bn2 into conv1 and leave an Identity in its place.
        self.bn2: nn.BatchNorm2d | nn.Identity = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        # A Sequential only so that the checkpoint key is "downsample.0.weight".
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False))
            if project
            else None
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(activated)
        # Module.__call__ returns Any in torch's stubs.
        out: torch.Tensor = self.conv2(self.relu(self.bn2(self.conv1(activated))))
        return out + shortcut


class ResNet22(nn.Module):
    """7x7/2 conv, 3x3/2 max pool (neither padded), 5 stages of 2 blocks, final BN + ReLU.

    Returns the (N, 256, h, w) feature map; callers average it over space.
    """

    def __init__(self, input_channels: int):
        super().__init__()
        self.first_conv = nn.Conv2d(input_channels, STAGE_FILTERS[0], 7, stride=2, bias=False)
        self.first_pool = nn.MaxPool2d(3, stride=2)
        self.layer_list = nn.ModuleList()
        in_channels = STAGE_FILTERS[0]
        for filters, stride in zip(STAGE_FILTERS, STAGE_STRIDES, strict=True):
            blocks = [BasicBlockV2(in_channels, filters, stride, project=True)]
            blocks += [
                BasicBlockV2(filters, filters, 1, project=False)
                for _ in range(BLOCKS_PER_STAGE - 1)
            ]
            self.layer_list.append(nn.Sequential(*blocks))
            in_channels = filters
        self.final_bn = nn.BatchNorm2d(FEATURES)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first_pool(self.first_conv(x))
        for stage in self.layer_list:
            h = stage(h)
        features: torch.Tensor = self.relu(self.final_bn(h))
        return features
