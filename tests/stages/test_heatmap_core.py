import random

import numpy as np
import pytest

from stages.core.heatmaps import assemble_heatmap, background_patches, patch_grid
from stages.core.patches import PATCH_SIZE, patch_starts


@pytest.mark.parametrize("length", [256, 257, 326, 327, 1000, 2677, 3328])
def test_patches_cover_the_axis_end_to_end(length):
    starts = patch_starts(length, random.Random(0))
    assert starts[0] == 0 and starts[-1] == length - PATCH_SIZE
    strides = np.diff(starts)
    assert all(strides <= 70) and (len(strides) == 0 or strides.max() - strides.min() <= 1)


def test_length_1000_gives_strides_of_67_and_68():
    strides = set(np.diff(patch_starts(1000, random.Random(0))))
    assert strides == {67, 68}


def test_shorter_strides_are_chosen_by_random_sample():
    # 1000 px: n = 11 strides, overlap 70 - 44 = 26, 26 % 11 = 4 shorter strides.
    rng = random.Random(0)
    starts = patch_starts(1000, rng)
    chosen = random.Random(0).sample(range(11), 4)
    strides = np.diff(starts)
    assert sorted(np.flatnonzero(strides == 67)) == sorted(chosen)
    assert rng.random() == _after_sample(chosen)


def _after_sample(_chosen):
    reference = random.Random(0)
    reference.sample(range(11), 4)
    return reference.random()


def test_exact_fit_draws_nothing():
    rng = random.Random(0)
    assert patch_starts(256 + 70 * 3, rng) == [0, 70, 140, 210]
    assert rng.random() == random.Random(0).random()


def test_axis_shorter_than_a_patch_is_refused():
    with pytest.raises(ValueError, match="shorter than the 256"):
        patch_starts(255, random.Random(0))


def test_grid_is_columns_outer_rows_inner_and_rows_drawn_first():
    corners = patch_grid((400, 500), random.Random(0))
    rng = random.Random(0)
    rows, cols = patch_starts(400, rng), patch_starts(500, rng)
    assert corners == [(r, c) for c in cols for r in rows]


def test_heatmap_is_the_mean_of_covering_patches():
    corners = [(0, 0), (44, 0), (0, 44), (44, 44)]  # a 300x300 image
    probabilities = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    heatmap = assemble_heatmap((300, 300), corners, probabilities)
    assert heatmap.dtype == np.float32
    assert heatmap[0, 0] == np.float32(0.1)
    assert heatmap[100, 100] == (
        np.float32(0.1) + np.float32(0.2) + np.float32(0.3) + np.float32(0.4)
    ) / np.float32(4)
    assert heatmap[299, 0] == np.float32(0.2) and heatmap[0, 299] == np.float32(0.3)


def test_background_patches_are_those_without_any_tissue():
    image = np.zeros((300, 600), np.uint16)
    image[10, 590] = 1
    corners = [(0, 0), (0, 344), (44, 344)]
    assert list(background_patches(image, corners)) == [True, False, True]
