"""The optimal window centre of a cropped image, as the NYU reference chooses it.

Only the row is ever searched: for CC views the column is pinned by the nipple-side
(rightmost) point, and for MLO views both coordinates are pinned by the landmarks.
"""

from __future__ import annotations

import numpy as np


def _window_span(center: int, size: int, length: int) -> tuple[int, int]:
    """[start, end) of a window of `size` centred at `center`, shifted or clipped inside."""
    start = center - size // 2
    shift = max(0, -start)
    return max(0, start), min(center + size - size // 2 + shift, length)


def cc_center(image: np.ndarray, window: tuple[int, int], rightmost_x: int) -> tuple[int, int]:
    """Best (y, x) for a CC view: the row whose window holds the most tissue pixels.

    `image` faces right. Candidate rows run from h//2 to height - (h - h//2); a shorter
    image has the single candidate height//2. Ties go to the row nearest height//2,
    the upper one first.
    """
    height, width = image.shape
    window_h, window_w = window
    center_x = rightmost_x - window_w // 2 - 1
    first_row, last_row = window_h // 2, height - (window_h - window_h // 2)
    com_y = height // 2
    if first_row >= last_row:
        return com_y, center_x

    col_start, col_end = _window_span(center_x, window_w, width)
    tissue_per_row = np.count_nonzero(image[:, col_start:col_end], axis=1)
    cumulative = np.concatenate(([0], np.cumsum(tissue_per_row)))
    candidates = np.arange(first_row, last_row + 1)
    # Every candidate window fits vertically, so no shifting: rows [y - h//2, y + h - h//2).
    counts = (
        cumulative[candidates + window_h - window_h // 2] - cumulative[candidates - window_h // 2]
    )
    best = candidates[counts == counts.max()]
    return int(best[np.argmin((best - com_y) ** 2)]), center_x


def mlo_center(
    image: np.ndarray, window: tuple[int, int], rightmost_x: int, bottommost_y: int
) -> tuple[int, int]:
    """(y, x) for an MLO view, pinned by the landmarks.

    The bottom landmark is raised to the last row with tissue in the rightmost
    `window_w` columns when that row is higher.
    """
    window_h, window_w = window
    rows_with_tissue = np.flatnonzero(image[:, -window_w:].any(axis=1))
    if rows_with_tissue.size:
        bottommost_y = min(int(rows_with_tissue[-1]), bottommost_y)
    return bottommost_y - window_h // 2 - 1, rightmost_x - window_w // 2 - 1
