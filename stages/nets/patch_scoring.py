"""The patch classifier over an exam: patch grids, batched scoring, background shared.

What generate_heatmaps computes, apart from its I/O: `exam_patches` cuts an exam's
cropped images into the reference's patch grid, `patch_probabilities` scores them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stages.core.errors import DataError
from stages.core.exam import VIEWS, Exam
from stages.core.heatmaps import (
    background_patches,
    cut_patches,
    patch_grid,
    standardize_for_patches,
)
from stages.core.orientation import to_facing_right
from stages.core.patches import PATCH_SIZE
from stages.io.exam_files import CROPPED_IMAGES, read_cropped_image
from stages.nets.densenet import BENIGN_CLASS, MALIGNANT_CLASS
from stages.nets.runtime import EXACT, Precision, autocast
from stages.progress import exam_steps
from stages.table import GENERATE_HEATMAPS

# The reference seeds Python's random once per run; one exam is one run here.
STRIDE_SEED = 0
CLASS_OF_KIND = {"malignant": MALIGNANT_CLASS, "benign": BENIGN_CLASS}


@dataclass
class ImagePatches:
    """One image's patch grid and which patches are all background."""

    view: str
    name: str
    image: np.ndarray  # standardised, facing right, float64
    corners: list[tuple[int, int]]
    background: np.ndarray


def prepare_image(
    raw: np.ndarray, view: str, name: str, flip: str, rng: random.Random
) -> ImagePatches:
    facing_right = to_facing_right(raw, view, flip)
    corners = patch_grid(facing_right.shape, rng)
    return ImagePatches(
        view,
        name,
        standardize_for_patches(facing_right),
        corners,
        background_patches(facing_right, corners),
    )


def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
    """The patch classifier laid out for speed: channels-last (NHWC) weights.

    oneDNN and cuDNN run NHWC convolutions faster, and the results stay within ~1e-7.
    """
    return model.to(memory_format=torch.channels_last)


def model_inputs(patches: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, 3, 256, 256) channels-last input: each greyscale patch copied to 3 channels."""
    grey = torch.from_numpy(patches).to(device)[:, None]
    return grey.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def patch_probabilities(
    images: list[ImagePatches],
    model: torch.nn.Module,
    device: torch.device,
    batch_size: int,
    progress_label: str,
    precision: Precision = EXACT,
) -> list[np.ndarray]:
    """Softmax outputs (N, 4) float32 per image, all images' patches batched together.

    All-background patches of an image are one input: it is scored once and shared.
    """
    # (image index, patch index) of each distinct input, in the reference's order.
    jobs: list[tuple[int, int]] = []
    for image_index, image in enumerate(images):
        distinct = ~image.background
        if image.background.any():
            distinct[np.argmax(image.background)] = True
        jobs += [(image_index, int(patch)) for patch in np.flatnonzero(distinct)]
    scores = [np.empty((len(image.corners), 4), np.float32) for image in images]
    batches = [jobs[start : start + batch_size] for start in range(0, len(jobs), batch_size)]
    for batch in exam_steps(GENERATE_HEATMAPS, progress_label, batches, "patches", len):
        patches = np.concatenate(
            [cut_patches(images[i].image, [images[i].corners[p]]) for i, p in batch]
        )
        with autocast(precision, device):
            logits = model(model_inputs(patches, device))
        probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        for (image_index, patch_index), row in zip(batch, probabilities, strict=True):
            scores[image_index][patch_index] = row
    for image, image_scores in zip(images, scores, strict=True):
        if image.background.any():
            image_scores[image.background] = image_scores[np.argmax(image.background)]
    return scores


def exam_patches(crop_exam_dir: Path, exam: Exam) -> list[ImagePatches]:
    """Every cropped image of `exam`, in view order, cut into the reference's patch grid.

    The stride draws come from one generator seeded per exam, as the reference seeds one
    per run; an image under one patch on an axis is the exam's data error.
    """
    rng = random.Random(STRIDE_SEED)
    images = []
    for view in VIEWS:
        for name in exam.images[view]:
            raw = read_cropped_image(crop_exam_dir, exam.exam_id, name)
            if min(raw.shape) < PATCH_SIZE:
                raise DataError(
                    f"cropped image is {raw.shape[0]}x{raw.shape[1]} px, under the "
                    f"{PATCH_SIZE} px patch on one axis",
                    exam=exam.exam_id,
                    file=f"{CROPPED_IMAGES}/{name}.png",
                )
            images.append(prepare_image(raw, view, name, exam.horizontal_flip, rng))
    return images
