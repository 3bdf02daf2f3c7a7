"""The patch classifier: torchvision's DenseNet-121 with TensorFlow-style SAME padding.

The published patch weights were trained with TensorFlow's SAME padding, which pads
according to the input size (and, for even sizes and stride 2, asymmetrically) where
torch pads a fixed amount. Every Conv2d and MaxPool2d is therefore swapped for a subclass
that zero-pads its input the TensorFlow way and has no padding of its own; the
transitions' AvgPool2d keeps torch's behaviour. Parameter names stay torchvision's, so a
bare torchvision DenseNet-121 state dict loads as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import DenseNet

NUM_CLASSES = 4
# Patch-classifier classes whose probabilities become heatmaps.
MALIGNANT_CLASS = 0
BENIGN_CLASS = 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(front, back) zeros TensorFlow's SAME padding adds along an axis of length `size`."""
    remainder = size % stride
    total = max(0, kernel - stride) if remainder == 0 else max(0, kernel - remainder)
    return total // 2, total - total // 2


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def same_pads(
    height: int,
    width: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    *,
    swap_axes: bool = False,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) SAME padding for an input of this height and width.

    `swap_axes` applies the height padding to the width and vice versa, as the NYU
    PyTorch port does; it makes no difference for square inputs and square kernels.
    """
    rows = same_padding(height, kernel[0], stride[0])
    cols = same_padding(width, kernel[1], stride[1])
    return (cols, rows) if swap_axes else (rows, cols)


def pad_same(
    x: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    *,
    swap_axes: bool = False,
) -> torch.Tensor:
    """Zero-pad an (N, C, H, W) tensor for a SAME-padded layer of this kernel and stride."""
    (top, bottom), (left, right) = same_pads(
        x.shape[2], x.shape[3], kernel, stride, swap_axes=swap_axes
    )
    return F.pad(x, (left, right, top, bottom))


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow SAME zero padding computed from each input's size."""

    swap_axes = False

    @classmethod
    def like(cls, conv: nn.Conv2d, *, swap_axes: bool = False) -> SamePadConv2d:
        """A SAME-padded copy of `conv` sharing its parameters (its padding is dropped)."""
        if _pair(conv.dilation) != (1, 1):
            raise ValueError("SAME padding is only defined here for undilated convolutions")
        same = cls(
            conv.in_channels,
            conv.out_channels,
            _pair(conv.kernel_size),
            stride=_pair(conv.stride),
            padding=0,
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        same.weight = conv.weight
        same.bias = conv.bias
        same.swap_axes = swap_axes
        return same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = _pair(self.kernel_size), _pair(self.stride)
        rows, cols = same_pads(x.shape[2], x.shape[3], kernel, stride, swap_axes=self.swap_axes)
        if rows[0] == rows[1] and cols[0] == cols[1]:
            # Symmetric: the convolution's own zero padding gives the same result without
            # a padded copy of the input (most layers: 3x3 and 1x1, stride 1).
            return F.conv2d(x, self.weight, self.bias, stride, (rows[0], cols[0]), 1, self.groups)
        return F.conv2d(F.pad(x, (*cols, *rows)), self.weight, self.bias, stride, 0, 1, self.groups)


class SamePadMaxPool2d(nn.MaxPool2d):
    """MaxPool2d with TensorFlow SAME padding, filled with zeros as in the NYU port.

    (TensorFlow ignores padded cells; zeros give the same result here because the
    pooled input comes out of a ReLU.)
    """

    swap_axes = False

    @classmethod
    def like(cls, pool: nn.MaxPool2d, *, swap_axes: bool = False) -> SamePadMaxPool2d:
        """A SAME-padded copy of `pool` (its padding is dropped)."""
        if _pair(pool.dilation) != (1, 1) or pool.ceil_mode:
            raise ValueError("SAME padding is only defined here for plain max pooling")
        same = cls(pool.kernel_size, stride=pool.stride, padding=0)
        same.swap_axes = swap_axes
        return same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad_same(x, _pair(self.kernel_size), _pair(self.stride), swap_axes=self.swap_axes)
        # torch leaves MaxPool2d.forward's return unannotated.
        pooled: torch.Tensor = super().forward(padded)
        return pooled


def use_same_padding(module: nn.Module, *, swap_axes: bool = False) -> None:
    """Swap, in place, every plain Conv2d and MaxPool2d inside `module` for its SAME twin."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Conv2d:
                setattr(parent, name, SamePadConv2d.like(child, swap_axes=swap_axes))
            elif type(child) is nn.MaxPool2d:
                setattr(parent, name, SamePadMaxPool2d.like(child, swap_axes=swap_axes))


# torchvision ships no type information, so DenseNet is Any to mypy.
class PatchDenseNet121(DenseNet):  # type: ignore[misc]
    """DenseNet-121 with 4 classes and SAME padding; returns logits (softmax is the caller's).

    Input: (N, 3, H, W) float32, the standardised greyscale patch copied to 3 channels.
    `swap_axes=True` reproduces the NYU port's height/width pad exchange for non-square
    inputs; the pipeline only feeds square patches, where both agree.
    """

    def __init__(self, *, swap_axes: bool = False) -> None:
        super().__init__(
            growth_rate=32,
            block_config=(6, 12, 24, 16),
            num_init_features=64,
            num_classes=NUM_CLASSES,
        )
        use_same_padding(self.features, swap_axes=swap_axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.features(x))
        pooled = F.adaptive_avg_pool2d(features, 1).flatten(1)
        # self.classifier comes from the untyped torchvision base class.
        logits: torch.Tensor = self.classifier(pooled)
        return logits
