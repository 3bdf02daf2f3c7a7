import itertools

import numpy as np
import pytest

from stages.core.centers import cc_center, mlo_center


def brute_force_cc(image, window, rightmost_x):
    """Enumerate every candidate row and count its window's tissue pixel by pixel."""
    height, width = image.shape
    h, w = window
    x = rightmost_x - w // 2 - 1
    first, last = h // 2, height - (h - h // 2)
    if first >= last:
        return height // 2, x
    best, best_key = None, None
    for y in range(first, last + 1):
        left = x - w // 2
        shift = max(0, -left)
        cols = range(max(0, left), min(x + w - w // 2 + shift, width))
        count = sum(
            1
            for r, c in itertools.product(range(y - h // 2, y - h // 2 + h), cols)
            if image[r, c] > 0
        )
        key = (-count, (y - height // 2) ** 2)
        if best_key is None or key < best_key:
            best, best_key = (y, x), key
    return best


@pytest.mark.parametrize("seed", range(12))
def test_cc_center_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(8, 30), rng.integers(5, 20)
    image = (rng.random((height, width)) > rng.random()).astype(np.uint16)
    window = (int(rng.integers(2, 12)), int(rng.integers(2, 25)))
    rightmost_x = int(rng.integers(0, width))
    assert cc_center(image, window, rightmost_x) == brute_force_cc(image, window, rightmost_x)


def test_cc_center_tie_prefers_row_nearest_middle_upper_first():
    image = np.zeros((20, 4), np.uint16)  # no tissue: every candidate ties at zero
    assert cc_center(image, (6, 2), 3) == (10, 1)
    image[:, :] = 1  # uniform tissue: again all tie
    assert cc_center(image, (5, 2), 3) == (10, 1)


def test_cc_center_image_shorter_than_window_takes_middle_row():
    image = np.ones((50, 40), np.uint16)
    assert cc_center(image, (2677, 1942), 39) == (25, 39 - 971 - 1)


def test_mlo_center_raises_bottom_to_last_tissue_row_of_right_columns():
    image = np.zeros((100, 60), np.uint16)
    image[10:70, 30:] = 1
    # The last row with tissue in the rightmost 20 columns is 69: above the landmark 90.
    assert mlo_center(image, (40, 20), rightmost_x=59, bottommost_y=90) == (
        69 - 20 - 1,
        59 - 10 - 1,
    )
    # A landmark above that row is kept.
    assert mlo_center(image, (40, 20), rightmost_x=59, bottommost_y=50) == (50 - 20 - 1, 48)
