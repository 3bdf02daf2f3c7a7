"""The view-split exam classifiers over an exam's four views: test-time augmentation, scoring.

What classify computes, apart from its I/O: `predict` averages each classifier's label
probabilities over the reference's augmentation epochs, on windows cut once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from stages.core.exam import VIEWS, Exam
from stages.core.windows import ViewWindow, draw_epochs, view_input
from stages.nets.provenance import IMAGE_MODEL_FILE, IMAGEHEATMAPS_MODEL_FILE
from stages.nets.resnet22 import BasicBlockV2
from stages.nets.runtime import EXACT, Precision, autocast
from stages.nets.view_split import label_probabilities
from stages.progress import exam_steps
from stages.table import CLASSIFY

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


def cut_epochs(
    views: dict[str, list[np.ndarray]],
    plan: list[list[ViewWindow]],
    cutter: ThreadPoolExecutor | None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Each epoch's windows, (1, C, h, w) by view; the same bits whichever way they are cut.

    With `cutter`, on its threads one epoch ahead: while the caller runs the networks on
    one epoch's windows the next epoch's are cut, the views in parallel, and at most two
    epochs' windows exist at a time. Without, each when it is needed.
    """

    def cut(window: ViewWindow) -> np.ndarray:
        return view_input(views[window.view][window.image_index], window.placement, window.view)

    def tensors(epoch: list[ViewWindow], inputs: list[np.ndarray]) -> dict[str, torch.Tensor]:
        return {
            window.view: torch.from_numpy(cut_input)[None]
            for window, cut_input in zip(epoch, inputs, strict=True)
        }

    if cutter is None:
        for epoch in plan:
            yield tensors(epoch, [cut(window) for window in epoch])
        return
    upcoming = [cutter.submit(cut, window) for window in plan[0]] if plan else []
    for position, epoch in enumerate(plan):
        inputs = [future.result() for future in upcoming]
        following = plan[position + 1] if position + 1 < len(plan) else []
        upcoming = [cutter.submit(cut, window) for window in following]
        yield tensors(epoch, inputs)


@torch.inference_mode()
def predict(
    models: dict[str, torch.nn.Module],
    views: dict[str, list[np.ndarray]],
    exam: Exam,
    settings: Settings,
) -> dict[str, np.ndarray]:
    """Per model, the mean label probabilities over the augmentation epochs, (4,) in LABELS order.

    The reference restarts the same seeded stream for each model, so every model sees the
    same windows: each epoch's windows are cut once, with all channels, moved to the
    device once, and each model takes the channels it uses.
    """
    plan = draw_epochs(
        {view: [image.shape for image in images] for view, images in views.items()},
        exam.metadata["best_center"],
        settings.epochs,
        settings.augmentation,
        AUGMENTATION_SEED,
    )
    per_epoch: dict[str, list[np.ndarray]] = {name: [] for name in models}
    # On an accelerator the windows are cut on CPU threads while it runs; on the CPU the
    # network already uses every core, and cutting beside it measured slower.
    cutter = None
    if settings.device.type != "cpu":
        cutter = ThreadPoolExecutor(max_workers=len(VIEWS), thread_name_prefix="bcd-windows")
    try:
        epochs = exam_steps(CLASSIFY, exam.exam_id, range(settings.epochs), "epochs")
        for _, cut_windows in zip(epochs, cut_epochs(views, plan, cutter), strict=True):
            windows = {view: window.to(settings.device) for view, window in cut_windows.items()}
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
    finally:
        if cutter is not None:
            cutter.shutdown(wait=True, cancel_futures=True)
    return {name: np.mean(values, axis=0) for name, values in per_epoch.items()}
