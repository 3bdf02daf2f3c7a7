"""Per-image standardisation, as both NYU models expect their input."""

from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-5


def standardize(image: np.ndarray) -> np.ndarray:
    """In place: subtract the mean, then divide by the std of the centred values (floored).

    Works in the array's own dtype (float64 for heatmap patches, float32 for the
    classifier's windows), as the reference does.
    """
    image -= np.mean(image)
    image /= np.maximum(np.std(image), STD_FLOOR)
    return image
