"""Per-image standardisation, as both NYU models expect their input."""

from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-5


def standardize(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """In place: subtract the mean, then divide by the std of the centred values (floored).

    Works in the array's own dtype (float64 for heatmap patches, float32 for the
    classifier's windows), as the reference does. With `out`, the quotient is written
    there (`image` is left centred): the same numbers, one pass fewer than a copy back.
    """
    image -= np.mean(image)
    quotient: np.ndarray = np.divide(
        image, np.maximum(np.std(image), STD_FLOOR), out=image if out is None else out
    )
    return quotient
