"""Pixel values to the 16-bit greyscale the models were trained on, and which way a breast faces."""

from __future__ import annotations

import numpy as np

# Halves whose mean brightness differs by less than this share are too close to call.
_FACING_MARGIN = 0.1


def to_16_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Values of a `bits`-deep image as uint16, scaled the way pypng writes a PNG.

    The NYU conversion helper wrote 12-bit mammograms through pypng with bitdepth=12,
    and pypng rescales each value to int(round(x * 65535.0 / (2**bits - 1))): round half
    to even on the float product, which np.rint reproduces. 16-bit values stay as they
    are. Values outside 0..2**bits-1 are clipped first.
    """
    top: int = 2**bits - 1  # int ** int is typed Any (a negative power gives a float)
    clipped: np.ndarray = np.clip(values, 0, top)
    if bits == 16:
        return clipped.astype(np.uint16)
    return np.rint(clipped.astype(np.float64) * (65535.0 / top)).astype(np.uint16)


def invert(values: np.ndarray, bits: int) -> np.ndarray:
    """MONOCHROME1 (white = 0) to MONOCHROME2: x -> 2**bits - 1 - x."""
    top: int = 2**bits - 1
    inverted: np.ndarray = top - values
    return inverted


def to_levels(values: np.ndarray, low: float, high: float, bits: int) -> np.ndarray:
    """Values spanning [low, high] (a window's output) as integers 0..2**bits-1."""
    top: int = 2**bits - 1
    scaled = (np.asarray(values, dtype=np.float64) - low) * (top / (high - low))
    levels: np.ndarray = np.clip(np.rint(scaled), 0, top).astype(np.int64)
    return levels


def chest_wall_side(image: np.ndarray) -> str | None:
    """'left' or 'right': the image half holding the breast (the brighter one), else None.

    The breast lies against the chest wall, so its half of the image is far brighter
    than the other, which is background; None when the halves are too close to call.
    """
    width = image.shape[1]
    left = float(image[:, : width // 2].mean())
    right = float(image[:, width - width // 2 :].mean())
    if max(left, right) <= 0 or abs(left - right) < _FACING_MARGIN * max(left, right):
        return None
    return "left" if left > right else "right"


def flip_of(side: str, chest_wall: str) -> str:
    """The exam's horizontal_flip that this image implies.

    Unflipped ("NO") images show left breasts with the chest wall on the left edge
    (the breast facing right) and right breasts mirrored to that.
    """
    return "NO" if (side == "L") == (chest_wall == "left") else "YES"
