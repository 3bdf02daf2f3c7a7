"""The patch DenseNet alone, on real patches of the measured exam: FLOPs and throughput."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from stages.core.heatmaps import cut_patches
from stages.core.patches import PATCH_SIZE
from stages.io.exam_files import CENTERS_JSON, load_exam
from stages.nets.patch_scoring import exam_patches, model_inputs
from stages.nets.runtime import Precision, autocast
from stages.table import CROP, EXTRACT_CENTERS


def flops_per_patch(model: torch.nn.Module) -> int:
    """Floating-point operations (2 per multiply-add) of one 256 x 256 patch's forward pass."""
    patch = torch.zeros(1, 3, PATCH_SIZE, PATCH_SIZE)
    counter: FlopCounterMode  # its __enter__ (returning self) is unannotated
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(patch)
    return counter.get_total_flops()


def tissue_patches(pfs_root: Path, exam_id: str, count: int) -> np.ndarray:
    """Up to `count` (N, 256, 256) float32 patches with tissue, from the exam's first images."""
    exam = load_exam(pfs_root / EXTRACT_CENTERS / exam_id, CENTERS_JSON)
    chunks, found = [], 0
    for image in exam_patches(pfs_root / CROP / exam_id, exam):
        picked = np.flatnonzero(~image.background)[: count - found]
        chunks.append(cut_patches(image.image, [image.corners[i] for i in picked]))
        found += len(picked)
        if found >= count:
            break
    return np.concatenate(chunks)


def patches_per_second(
    model: torch.nn.Module,
    patches: np.ndarray,
    batch_size: int,
    precision: Precision,
    device: torch.device,
) -> float:
    """Forward passes per second over `patches` in batches, after one warm-up batch.

    Inputs are made as generate_heatmaps makes them, so this times what the stage runs.
    """
    with torch.inference_mode(), autocast(precision, device):
        model(model_inputs(patches[:batch_size], device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for first in range(0, len(patches), batch_size):
            model(model_inputs(patches[first : first + batch_size], device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(patches) / (time.perf_counter() - start)
