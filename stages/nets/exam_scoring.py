"""The view-split exam classifiers over an exam's four views: test-time augmentation, scoring.

What classify computes, apart from its I/O: `predict` averages each classifier's label
probabilities over the reference's augmentation epochs, on windows cut once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from stages.core.exam import Exam
from stages.core.windows import draw_epochs, view_input
from stages.nets.provenance import IMAGE_MODEL_FILE, IMAGEHEATMAPS_MODEL_FILE
from stages.nets.resnet22 import BasicBlockV2
from stages.nets.runtime import EXACT, Precision, autocast
from stages.nets.view_split import label_probabilities

# The reference seeds numpy's RandomState once per model run; one exam is one run here.
AUGMENTATION_SEED = 0
MODEL_FILES = {"image": IMAGE_MODEL_FILE, "imageheatmaps": IMAGEHEATMAPS_MODEL_FILE}
MODEL_CHANNELS = {"image": 1, "imageheatmaps": 3}


@dataclass(frozen=True)
class Settings:
    epochs: int
    augmentation: bool
    device: torch.device
    precision: Precision = EXACT


def prepare_classifier(model: torch.nn.Module) -> torch.nn.Module:
    """The classifier laid out for speed, same function: BN folded, channels-last weights.

    In each residual block bn2 directly follows conv1, so it folds into conv1's weights
    and a bias (exact up to float rounding, ~1e-7 relative); channels-last (NHWC) spares
    oneDNN and cuDNN a layout conversion around every convolution of these large inputs.
    """
    for block in model.modules():
        if isinstance(block, BasicBlockV2) and isinstance(block.bn2, torch.nn.BatchNorm2d):
            block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn2)
            block.bn2 = torch.nn.Identity()
    return model.to(memory_format=torch.channels_last)


def model_input(window: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A (1, C, h, w) window on `device`, channels-last like the prepared model."""
    return window.to(device).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict(
    models: dict[str, torch.nn.Module],
    views: dict[str, list[np.ndarray]],
    exam: Exam,
    settings: Settings,
) -> dict[str, np.ndarray]:
    """Per model, the mean label probabilities over the augmentation epochs, (4,) in LABELS order.

    The reference restarts the same seeded stream for each model, so every model sees the
    same windows: each epoch's windows are cut once, with all channels, and each model
    takes the channels it uses.
    """
    plan = draw_epochs(
        {view: [image.shape for image in images] for view, images in views.items()},
        exam.metadata["best_center"],
        settings.epochs,
        settings.augmentation,
        AUGMENTATION_SEED,
    )
    per_epoch: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for epoch in plan:
        windows = {
            window.view: torch.from_numpy(
                view_input(views[window.view][window.image_index], window.placement, window.view)
            )[None]
            for window in epoch
        }
        for name, model in models.items():
            channels = MODEL_CHANNELS[name]
            batch = {
                view: model_input(window[:, :channels], settings.device)
                for view, window in windows.items()
            }
            with autocast(settings.precision, settings.device):
                log_probs = model(batch)
            probabilities = label_probabilities({k: v.float() for k, v in log_probs.items()})
            per_epoch[name].append(probabilities.double().cpu().numpy()[0])
    return {name: np.mean(values, axis=0) for name, values in per_epoch.items()}
