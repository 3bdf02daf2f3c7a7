"""Pixel maths for overlays: windowing a mammogram, tinting it by a heatmap, colour bars.

Pure numpy, no I/O. Colours are RGB; every output is uint8.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RED: tuple[int, int, int] = (255, 0, 0)
GREEN: tuple[int, int, int] = (0, 255, 0)
# Opacity of the tint where the probability is 1: below 1 so the anatomy stays visible.
FULL_PROBABILITY_ALPHA = 0.8
# Grey behind the colour bar, a stand-in for average breast tissue.
COLOUR_BAR_BACKGROUND = 128


def display_window(
    image: np.ndarray, low_percentile: float = 0.5, high_percentile: float = 99.5
) -> tuple[float, float]:
    """The (low, high) grey levels that map to black and white.

    Percentiles of the breast pixels only (non-zero): the zero background would
    otherwise pull the low end down and wash out the tissue.
    """
    tissue = image[image > 0]
    sample = tissue if tissue.size else image.ravel()
    low, high = np.percentile(sample, [low_percentile, high_percentile])
    return float(low), float(max(high, low + 1.0))


def apply_window(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of [low, high] to [0, 255], clipped, as uint8."""
    scaled = (image.astype(np.float32) - low) / (high - low)
    # numpy's stubs type np.clip here as returning Any.
    windowed: npt.NDArray[np.uint8] = np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    return windowed


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """A (H, W) uint8 image as (H, W, 3) uint8."""
    return np.repeat(grey[..., None], 3, axis=2)


def tint(
    grey: np.ndarray,
    probability: np.ndarray,
    colour: tuple[int, int, int],
    full_alpha: float = FULL_PROBABILITY_ALPHA,
) -> np.ndarray:
    """`colour` laid over a grey image with opacity `probability * full_alpha`, as RGB uint8."""
    alpha = (np.clip(probability, 0.0, 1.0) * full_alpha).astype(np.float32)[..., None]
    base = grey.astype(np.float32)[..., None]
    tinted = base * (1.0 - alpha) + np.asarray(colour, dtype=np.float32) * alpha
    # numpy's stubs type np.clip here as returning Any, and so `tinted`.
    rgb: npt.NDArray[np.uint8] = np.rint(tinted).astype(np.uint8)
    return rgb


def colour_bar(
    length: int,
    thickness: int,
    colour: tuple[int, int, int],
    full_alpha: float = FULL_PROBABILITY_ALPHA,
) -> np.ndarray:
    """A horizontal bar, probability 0 at the left to 1 at the right, tinted like `tint`."""
    ramp = np.linspace(0.0, 1.0, length, dtype=np.float32)
    probability = np.broadcast_to(ramp, (thickness, length))
    background = np.full((thickness, length), COLOUR_BAR_BACKGROUND, dtype=np.uint8)
    return tint(background, probability, colour, full_alpha)
