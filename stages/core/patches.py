"""Patch sampling for the heatmaps: the reference's stride rule and its random choices."""

from __future__ import annotations

import random
from itertools import accumulate

PATCH_SIZE = 256
STRIDE = 70


def patch_starts(length: int, rng: random.Random) -> list[int]:
    """Start offsets of the patches along one axis of `length` pixels.

    n = (length - 256) // 70 + 1 patches fit at stride 70. When pixels remain, one more
    patch ends flush with the edge and the overlap it creates is spread over the n
    strides: each becomes 70 - overlap // n, and `overlap % n` of them, chosen by
    `rng.sample` (the reference's own call, so a seeded rng picks the same ones), are one
    pixel shorter still.
    """
    if length < PATCH_SIZE:
        raise ValueError(f"an axis of {length} px is shorter than the {PATCH_SIZE} px patch")
    n_fit = (length - PATCH_SIZE) // STRIDE + 1
    remainder = (length - PATCH_SIZE) % STRIDE
    if remainder == 0:
        strides = [STRIDE] * (n_fit - 1)
    else:
        overlap = STRIDE - remainder
        strides = [STRIDE - overlap // n_fit] * n_fit
        for index in rng.sample(range(n_fit), overlap % n_fit):
            strides[index] -= 1
    return [0, *accumulate(strides)]
