"""Heatmaps from patch probabilities: the image side of the patch classifier, no torch.

An image is standardised, cut into 256 px patches on the reference's stride grid and,
once the patch classifier has scored each patch, every pixel gets the mean probability
of the patches covering it.
"""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt

from stages.core.normalize import standardize
from stages.core.patches import PATCH_SIZE, patch_starts


def standardize_for_patches(facing_right: np.ndarray) -> np.ndarray:
    """float64 copy standardised by the whole image's mean and std (std floored)."""
    return standardize(facing_right.astype(np.float32).astype(np.float64))


def patch_grid(shape: tuple[int, int], rng: random.Random) -> list[tuple[int, int]]:
    """(row, col) top-left corners in the reference's order: columns outer, rows inner.

    Row strides are drawn from `rng` before column strides.
    """
    row_starts = patch_starts(shape[0], rng)
    col_starts = patch_starts(shape[1], rng)
    return [(row, col) for col in col_starts for row in row_starts]


def background_patches(facing_right: np.ndarray, corners: list[tuple[int, int]]) -> np.ndarray:
    """Boolean per patch: True when every pixel of the patch is zero (background).

    Such patches standardise to one and the same input, so one forward serves them all.
    """
    tissue = np.zeros((facing_right.shape[0] + 1, facing_right.shape[1] + 1), np.int64)
    tissue[1:, 1:] = np.cumsum(np.cumsum(facing_right != 0, axis=0), axis=1)
    rows = np.array([corner[0] for corner in corners])
    cols = np.array([corner[1] for corner in corners])
    row_ends, col_ends = rows + PATCH_SIZE, cols + PATCH_SIZE
    counts = (
        tissue[row_ends, col_ends]
        - tissue[rows, col_ends]
        - tissue[row_ends, cols]
        + tissue[rows, cols]
    )
    # numpy types ndarray.__eq__ as returning Any.
    background: npt.NDArray[np.bool_] = counts == 0
    return background


def cut_patches(image: np.ndarray, corners: list[tuple[int, int]]) -> np.ndarray:
    """(N, 256, 256) float32 patches of a standardised float64 image."""
    patches = np.empty((len(corners), PATCH_SIZE, PATCH_SIZE), np.float32)
    for index, (row, col) in enumerate(corners):
        patches[index] = image[row : row + PATCH_SIZE, col : col + PATCH_SIZE]
    return patches


def assemble_heatmap(
    shape: tuple[int, int], corners: list[tuple[int, int]], probabilities: np.ndarray
) -> np.ndarray:
    """Per-pixel mean of the float32 probabilities of the covering patches.

    Sums and counts accumulate in float32 in patch order, as the reference does, so the
    result matches it bit for bit.
    """
    total = np.zeros(shape, np.float32)
    count = np.zeros(shape, np.float32)
    for (row, col), probability in zip(corners, probabilities.astype(np.float32), strict=True):
        total[row : row + PATCH_SIZE, col : col + PATCH_SIZE] += probability
        count[row : row + PATCH_SIZE, col : col + PATCH_SIZE] += 1
    return total / count
