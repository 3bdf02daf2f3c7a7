"""The classifier's input window per view, with the reference's test-time augmentation.

Around `best_center` a window of the view's input size is placed, shifted inside the
image (zero-padded first when the image is too small to leave room for the noise),
moved by a random crop offset, its borders jittered by random size noise, and resized
back to the input size. Every random draw is made in the reference's order from a
numpy RandomState, so the same seed gives the same windows.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from stages.core.exam import INPUT_SIZE, view_angle
from stages.core.normalize import standardize

AUGMENTED_CROP_NOISE = 100
AUGMENTED_SIZE_NOISE = 100


def _pad_and_align(
    image_length: int, window_length: int, margin: int, both_ends: bool
) -> tuple[int, int, int, int]:
    """(start, end, pad_front, pad_back) for an axis too short for window plus margin."""
    pad = window_length - image_length + margin * (2 if both_ends else 1)
    start, pad_front = (margin, int(pad / 2)) if both_ends else (0, 0)
    return start, start + window_length, pad_front, pad - pad_front


def _shift_inside(start: int, end: int, image_length: int, window_length: int) -> tuple[int, int]:
    if start < 0:
        return 0, window_length
    if end > image_length:
        return image_length - window_length, image_length
    return start, end


def _noise_direction(multiplier: float, start: int, end: int, length: int) -> float:
    """A window touching an edge may only move away from it."""
    if start == 0:
        return abs(multiplier)
    if end == length:
        return -abs(multiplier)
    return multiplier


def place_window(
    image: np.ndarray,
    view: str,
    best_center: tuple[int, int],
    rng: np.random.RandomState,
    max_crop_noise: int,
    max_size_noise: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pad `image` (H, W, C) if needed and choose the window; returns (image, borders).

    borders = (top, bottom, left, right) in the (possibly padded) image, noise applied.
    Draws uniform(-1, 1, 2) for the crop offset when crop noise is on, then always
    uniform(-1, 1, 4) for the size noise.
    """
    window_h, window_w = INPUT_SIZE[view_angle(view)]
    crop_noise = np.array((max_crop_noise, max_crop_noise))
    multiplier: npt.NDArray[np.float32 | np.float64] = np.zeros(2, dtype=np.float32)
    if crop_noise.any():
        multiplier = rng.uniform(low=-1.0, high=1.0, size=2)

    center_y, center_x = best_center
    top, bottom = center_y - window_h // 2, center_y + window_h - window_h // 2
    left, right = center_x - window_w // 2, center_x + window_w - window_w // 2

    height, width = image.shape[:2]
    pad_top = pad_bottom = pad_right = 0
    margin = max_crop_noise + max_size_noise
    if view_angle(view) == "CC":
        if height < window_h + 2 * margin:
            top, bottom, pad_top, pad_bottom = _pad_and_align(height, window_h, margin, True)
    elif height < window_h + margin:
        top, bottom, _, pad_bottom = _pad_and_align(height, window_h, margin, False)
    if width < window_w + margin:
        left, right, _, pad_right = _pad_and_align(width, window_w, margin, False)
    if pad_top or pad_bottom or pad_right:
        padded = np.zeros(
            (height + pad_top + pad_bottom, width + pad_right, image.shape[2]), dtype=image.dtype
        )
        padded[pad_top : pad_top + height, :width] = image
        image = padded
        height, width = image.shape[:2]

    top, bottom = _shift_inside(top, bottom, height, window_h)
    left, right = _shift_inside(left, right, width, window_w)
    multiplier[0] = _noise_direction(multiplier[0], top, bottom, height)
    multiplier[1] = _noise_direction(multiplier[1], left, right, width)

    vertical_room = height - bottom if multiplier[0] >= 0 else top
    horizontal_room = width - right if multiplier[1] >= 0 else left
    crop_noise[0] = min(crop_noise[0], vertical_room)
    crop_noise[1] = min(crop_noise[1], horizontal_room)
    offset = np.round(crop_noise * multiplier)
    borders = np.array((top, bottom, left, right), dtype=np.int32)
    borders += np.array((offset[0], offset[0], offset[1], offset[1]), dtype=np.int32)

    size_multiplier = rng.uniform(low=-1.0, high=1.0, size=4)
    size_noise = min(
        max_size_noise, borders[0], height - borders[1], borders[2], width - borders[3]
    )
    # Both input sizes are taller than wide: the horizontal noise scales by w / h.
    horizontal_noise = np.round(size_noise * (window_w / window_h))
    noise_limits = np.array(
        (size_noise, size_noise, horizontal_noise, horizontal_noise), dtype=np.int32
    )
    borders += np.array(np.round(noise_limits * size_multiplier), dtype=np.int32)
    return image, borders


def cut_window(image: np.ndarray, borders: np.ndarray, view: str) -> np.ndarray:
    """The (h, w, C) window: the borders' content, resized (bicubic) when sizes differ."""
    window_h, window_w = INPUT_SIZE[view_angle(view)]
    top, bottom, left, right = (int(b) for b in borders)
    window = image[top:bottom, left:right]
    if (bottom - top, right - left) != (window_h, window_w):
        window = cv2.resize(window, (window_w, window_h), interpolation=cv2.INTER_CUBIC)
        if window.ndim == 2:
            window = window[:, :, np.newaxis]
    return window


def sample_view_input(
    image: np.ndarray,
    view: str,
    best_center: tuple[int, int],
    rng: np.random.RandomState,
    augmentation: bool,
) -> np.ndarray:
    """One (C, h, w) float32 model input: window, image channel standardised.

    `image` is (H, W, C) float32, facing right: the mammogram in channel 0, then the
    benign and malignant heatmaps when the model uses them.
    """
    noise = AUGMENTED_CROP_NOISE if augmentation else 0
    size_noise = AUGMENTED_SIZE_NOISE if augmentation else 0
    padded, borders = place_window(image, view, best_center, rng, noise, size_noise)
    window = cut_window(padded, borders, view)
    channels = [standardize(window[:, :, 0].copy())]
    channels += [window[:, :, index] for index in range(1, window.shape[2])]
    return np.stack(channels).astype(np.float32, copy=False)
