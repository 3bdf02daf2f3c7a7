"""What the visualize stage reads of one image: the cropped mammogram and its two heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.core.errors import DataError
from stages.io.heatmaps_h5 import heatmap_path, read_heatmap

# Rounding slack allowed around [0, 1] in heatmap values.
PROBABILITY_SLACK = 1e-5


def read_probability_heatmap(
    heatmaps_exam_dir: Path, exam_id: str, kind: str, image_name: str, shape: tuple[int, int]
) -> np.ndarray:
    """One heatmap as (H, W) float32 aligned with its cropped image; DataError naming the
    file when it is missing, unreadable, misshapen or holds anything but probabilities."""
    file = heatmap_path(Path(), kind, image_name).as_posix()
    heatmap = read_heatmap(heatmaps_exam_dir / file, shape, exam=exam_id, file=file)
    heatmap = heatmap.astype(np.float32)
    if not np.isfinite(heatmap).all() or not (
        heatmap.min() >= -PROBABILITY_SLACK and heatmap.max() <= 1 + PROBABILITY_SLACK
    ):
        raise DataError(
            f"{kind} heatmap values must be finite probabilities in [0, 1]: regenerate it",
            exam=exam_id,
            file=file,
        )
    return heatmap
