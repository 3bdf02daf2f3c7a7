"""The classifier's input window per view, with the reference's test-time augmentation.

Around `best_center` a window of the view's input size is placed, shifted inside the
image (zero-padded first when the image is too small to leave room for the noise),
moved by a random crop offset, its borders jittered by random size noise, and resized
back to the input size. Every random draw is made in the reference's order from a
numpy RandomState, so the same seed gives the same windows.

The draws (`draw_placement`, `draw_epochs`) are apart from the pixel work (`view_input`),
which is deterministic: an exam's windows can be drawn up front and cut later, on any
thread. Only the window's own region is ever zero-padded, never the whole image, and the
window is built channels-last, the layout the classifier runs in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from stages.core.exam import INPUT_SIZE, VIEWS, view_angle
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


@dataclass(frozen=True)
class Placement:
    """One window: the zero padding the image gets, and the window's borders.

    borders = (top, bottom, left, right), int32, in the padded image, noise applied.
    """

    pad_top: int
    pad_bottom: int
    pad_right: int
    borders: npt.NDArray[np.int32]


def draw_placement(
    shape: tuple[int, ...],
    view: str,
    best_center: tuple[int, int],
    rng: np.random.RandomState,
    max_crop_noise: int,
    max_size_noise: int,
) -> Placement:
    """Where the window of an image of `shape` (H, W, ...) lies.

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

    height, width = shape[:2]
    pad_top = pad_bottom = pad_right = 0
    margin = max_crop_noise + max_size_noise
    if view_angle(view) == "CC":
        if height < window_h + 2 * margin:
            top, bottom, pad_top, pad_bottom = _pad_and_align(height, window_h, margin, True)
    elif height < window_h + margin:
        top, bottom, _, pad_bottom = _pad_and_align(height, window_h, margin, False)
    if width < window_w + margin:
        left, right, _, pad_right = _pad_and_align(width, window_w, margin, False)
    height += pad_top + pad_bottom
    width += pad_right

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
    return Placement(pad_top, pad_bottom, pad_right, borders)


def place_window(
    image: np.ndarray,
    view: str,
    best_center: tuple[int, int],
    rng: np.random.RandomState,
    max_crop_noise: int,
    max_size_noise: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`draw_placement` with the whole (H, W, C) image padded: (padded image, borders).

    The reference's own formulation, for looking at a placement; `view_input` pads only
    the window's region and gives the same pixels.
    """
    placement = draw_placement(image.shape, view, best_center, rng, max_crop_noise, max_size_noise)
    if not (placement.pad_top or placement.pad_bottom or placement.pad_right):
        return image, placement.borders
    height, width = image.shape[:2]
    padded = np.zeros(
        (
            height + placement.pad_top + placement.pad_bottom,
            width + placement.pad_right,
            *image.shape[2:],
        ),
        dtype=image.dtype,
    )
    padded[placement.pad_top : placement.pad_top + height, :width] = image
    return padded, placement.borders


def cut_window(image: np.ndarray, borders: np.ndarray, view: str, pad_top: int = 0) -> np.ndarray:
    """The (h, w, C) window as a new array, resized (bicubic) when sizes differ.

    `borders` are in the frame of `image` zero-padded by `pad_top` rows above and as far
    as the borders reach below and to the right; only the window's region is padded.
    """
    window_h, window_w = INPUT_SIZE[view_angle(view)]
    top, bottom, left, right = (int(b) for b in borders)
    height, width = image.shape[:2]
    first, last = top - pad_top, bottom - pad_top  # the window's rows in `image`
    inside = first >= 0 and last <= height and right <= width
    if inside:
        region = image[first:last, left:right]
    else:
        region = np.zeros((bottom - top, right - left, *image.shape[2:]), dtype=image.dtype)
        rows = slice(max(first, 0), min(last, height))
        columns = slice(left, min(right, width))
        if rows.start < rows.stop and columns.start < columns.stop:  # not all padding
            region[rows.start - first : rows.stop - first, : columns.stop - left] = image[
                rows, columns
            ]
    if region.shape[:2] == (window_h, window_w):
        return region.copy() if inside else region
    window = cv2.resize(region, (window_w, window_h), interpolation=cv2.INTER_CUBIC)
    return window[:, :, np.newaxis] if window.ndim == 2 else window


def view_input(image: np.ndarray, placement: Placement, view: str) -> np.ndarray:
    """One (C, h, w) float32 model input, its memory channels-last: window, image channel
    standardised.

    `image` is (H, W, C) float32, facing right: the mammogram in channel 0, then the
    benign and malignant heatmaps when the model uses them.
    """
    window = cut_window(image, placement.borders, view, placement.pad_top)
    mammogram = window[:, :, 0]
    # The statistics over a C-ordered copy: float32 sums depend on the memory order.
    standardize(np.ascontiguousarray(mammogram), out=mammogram)
    return window.transpose(2, 0, 1)


def draw_view_placement(
    shape: tuple[int, ...],
    view: str,
    best_center: tuple[int, int],
    rng: np.random.RandomState,
    augmentation: bool,
) -> Placement:
    """`draw_placement` with the reference's noise: 100 and 100 with augmentation, else none."""
    noise = AUGMENTED_CROP_NOISE if augmentation else 0
    size_noise = AUGMENTED_SIZE_NOISE if augmentation else 0
    return draw_placement(shape, view, best_center, rng, noise, size_noise)


def sample_view_input(
    image: np.ndarray,
    view: str,
    best_center: tuple[int, int],
    rng: np.random.RandomState,
    augmentation: bool,
) -> np.ndarray:
    """One (C, h, w) float32 model input, drawn from `rng` and cut (see `view_input`)."""
    placement = draw_view_placement(image.shape, view, best_center, rng, augmentation)
    return view_input(image, placement, view)


@dataclass(frozen=True)
class ViewWindow:
    """One view's window in one epoch: which of the view's images, and where."""

    view: str
    image_index: int
    placement: Placement


def draw_epochs(
    shapes: Mapping[str, Sequence[tuple[int, ...]]],
    best_centers: Mapping[str, Sequence[Sequence[int]]],
    epochs: int,
    augmentation: bool,
    seed: int,
) -> list[list[ViewWindow]]:
    """Every epoch's windows, views in order, drawn from RandomState(seed) as the
    reference draws them: per view `randint(0, n_images)` (with augmentation), then the
    placement's draws. `shapes` and `best_centers` hold, per view, those of its images.
    """
    rng = np.random.RandomState(seed)
    plan = []
    for _ in range(epochs):
        windows = []
        for view in VIEWS:
            index = rng.randint(low=0, high=len(shapes[view])) if augmentation else 0
            center = best_centers[view][index]
            placement = draw_view_placement(
                shapes[view][index], view, (int(center[0]), int(center[1])), rng, augmentation
            )
            windows.append(ViewWindow(view, int(index), placement))
        plan.append(windows)
    return plan
