"""Overlay figures for people: the compression they are saved with, embedded copies."""

from __future__ import annotations

import base64

import cv2
import numpy as np

# zlib level 6: a third of the fast default's size for mammogram overlays, at about a
# second per full-size figure; overlays are kept for people to look at.
OVERLAY_PNG_COMPRESSION = 6


def fit_height(rgb: np.ndarray, max_height: int) -> np.ndarray:
    """The image scaled down (area averaging) to at most `max_height` rows; never enlarged."""
    height, width = rgb.shape[:2]
    if height <= max_height:
        return rgb
    new_width = max(1, round(width * max_height / height))
    return cv2.resize(rgb, (new_width, max_height), interpolation=cv2.INTER_AREA)


def png_data_uri(png: bytes) -> str:
    """A data: URI, so that a page carries its images inside itself."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
