"""The view-split ("view-wise") exam classifier of Wu et al. 2019.

One ResNet-22 per view angle, shared by the left and right breast; per angle the two
pooled feature vectors are concatenated and mapped to four (label, yes/no) pairs:
left benign, right benign, left malignant, right malignant. Inference only (the
training-time input noise of the paper is not part of it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stages.core.exam import ANGLES, LABELS, VIEWS, view_angle
from stages.nets.resnet22 import FEATURES, ResNet22

IMAGE_CHANNELS = 1
IMAGE_HEATMAPS_CHANNELS = 3  # image, benign heatmap, malignant heatmap
# The checkpoints hold each angle's trunk under its own name ("cc", "mlo") and again under
# one alias per breast side, all the same tensors. Registration order is the published
# models' key order, and decides which copy a load keeps should they differ (the last).
TRUNK_ALIASES: tuple[tuple[str, str], ...] = (
    ("l_cc", "cc"),
    ("l_mlo", "mlo"),
    ("r_cc", "cc"),
    ("r_mlo", "mlo"),
)


def trunk_name(view: str) -> str:
    """The shared trunk a view goes through: 'cc' or 'mlo'."""
    return view_angle(view).lower()


class AngleTrunks(nn.Module):
    """The CC and MLO ResNet-22s, also reachable as l_cc, r_cc, l_mlo, r_mlo."""

    def __init__(self, input_channels: int):
        super().__init__()
        self.cc = ResNet22(input_channels)
        self.mlo = ResNet22(input_channels)
        for alias, trunk in TRUNK_ALIASES:
            setattr(self, alias, getattr(self, trunk))

    def forward(self, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Spatially averaged (N, 256) features per view."""
        return {
            view: getattr(self, trunk_name(view))(views[view]).flatten(2).mean(-1) for view in VIEWS
        }


class LabelPairsHead(nn.Module):
    """Linear map to 4 labels x (no, yes), then log-softmax over each pair."""

    def __init__(self, in_features: int):
        super().__init__()
        self.fc_layer = nn.Linear(in_features, len(LABELS) * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.fc_layer(x).view(-1, len(LABELS), 2), dim=-1)


class ViewSplitClassifier(nn.Module):
    """Four views in, per-angle log-probabilities out.

    Input: {view: (N, C, H, W) float32} for L-CC, R-CC, L-MLO, R-MLO, with C = 1 (image)
    or 3 (image, benign heatmap, malignant heatmap). Output: {"CC": (N, 4, 2),
    "MLO": (N, 4, 2)} log-softmax, rows in LABELS order, column 1 = label present.
    """

    def __init__(self, input_channels: int):
        super().__init__()
        self.input_channels = input_channels
        self.four_view_resnet = AngleTrunks(input_channels)
        self.fc1_cc = nn.Linear(2 * FEATURES, 2 * FEATURES)
        self.fc1_mlo = nn.Linear(2 * FEATURES, 2 * FEATURES)
        self.output_layer_cc = LabelPairsHead(2 * FEATURES)
        self.output_layer_mlo = LabelPairsHead(2 * FEATURES)

    def forward(self, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features = self.four_view_resnet(views)
        out = {}
        for angle in ANGLES:
            both_sides = torch.cat([features[f"L-{angle}"], features[f"R-{angle}"]], dim=1)
            hidden = F.relu(getattr(self, f"fc1_{angle.lower()}")(both_sides))
            out[angle] = getattr(self, f"output_layer_{angle.lower()}")(hidden)
        return out


def label_probabilities(log_probs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, 4) probability of each label (LABELS order): the mean of its CC and MLO values."""
    return torch.stack([log_probs[angle][..., 1].exp() for angle in ANGLES]).mean(0)
