"""Crop a mammogram to its breast, exactly as the NYU reference does, but fast.

The reference erodes the tissue mask 100 times with the 3x3 cross, keeps the largest
connected component and dilates it 100 times. k erosions by the cross keep exactly the
pixels whose taxicab distance to the background (the outside of the image counting as
background) exceeds k, and k dilations add exactly the pixels within taxicab distance k,
so one distance transform replaces each loop of 100 passes. OpenCV's L1 transform with a
3x3 mask is exact (not a chamfer approximation) and several times faster than scipy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from stages.core.errors import DataError

MORPHOLOGY_ITERATIONS = 100
BUFFER_SIZE = 50
# The top third of the cropped mask is ignored when looking for the nipple-side column.
RIGHTMOST_SEARCH_FROM = 1 / 3


@dataclass(frozen=True)
class CropInfo:
    """Where the crop sits in the raw image and landmarks in the cropped frame."""

    window_location: tuple[int, int, int, int]  # top, bottom, left, right
    rightmost_points: tuple[tuple[int, int], int]  # (y_first, y_last), x
    bottommost_points: tuple[int, tuple[int, int]]  # y, (x_first, x_last)
    distance_from_starting_side: int

    def as_json(self) -> dict[str, list[Any] | int]:
        """The four metadata values with tuples as lists (the exam.json convention)."""
        (y0, y1), x = self.rightmost_points
        y, (x0, x1) = self.bottommost_points
        return {
            "window_location": list(self.window_location),
            "rightmost_points": [[y0, y1], x],
            "bottommost_points": [y, [x0, x1]],
            "distance_from_starting_side": self.distance_from_starting_side,
        }


def _as_bytes(mask: np.ndarray) -> np.ndarray:
    """A bool mask as 0/1 uint8 for OpenCV, without a copy when it is contiguous."""
    return np.ascontiguousarray(mask).view(np.uint8)


def _distance_to_background(mask: np.ndarray, beyond: int) -> np.ndarray:
    """Per pixel, the taxicab distance to the nearest False pixel (0 on False pixels).

    Pixels outside the image do not count as False here. Distances above `beyond` may be
    clipped (to 255 in uint8, a quarter of float32's memory, when `beyond` < 255).
    """
    depth = cv2.CV_8U if beyond < 255 else cv2.CV_32F
    return cv2.distanceTransform(_as_bytes(mask), cv2.DIST_L1, cv2.DIST_MASK_3, dstType=depth)


def erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """`iterations` binary erosions by the 3x3 cross, border as background."""
    return _distance_to_background(np.pad(mask, 1), iterations)[1:-1, 1:-1] > iterations


def dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """`iterations` binary dilations by the 3x3 cross."""
    return _distance_to_background(~mask, iterations) <= iterations


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component; ties go to the first in raster order, as in scipy."""
    # Without stats: OpenCV's stats pass costs more than a bincount of the labels.
    count, labels = cv2.connectedComponentsWithAlgorithm(
        _as_bytes(mask), 4, cv2.CV_32S, cv2.CCL_SAUF
    )
    if count == 1:
        raise ValueError("empty mask")
    # bincount copies its input to int64: counted in row bands, that copy stays small.
    bands = np.array_split(labels, 16)
    band_sizes = sum(np.bincount(band.ravel(), minlength=count) for band in bands)
    # array_split always gives 16 bands, so sum() never returns its start value 0.
    assert isinstance(band_sizes, np.ndarray)
    sizes = band_sizes[1:]
    tied = np.flatnonzero(sizes == sizes.max()) + 1
    # numpy types ndarray.__eq__ as returning Any: the bool masks are annotated.
    component: npt.NDArray[np.bool_]
    if len(tied) == 1:
        component = labels == tied[0]
        return component
    flat = labels.ravel()
    first_pixels = [int(np.argmax(flat == label)) for label in tied]
    component = labels == tied[int(np.argmin(first_pixels))]
    return component


def tissue_box(image: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of the non-zero pixels, None when there are none.

    The morphology only needs this box: outside it every pixel is background, the
    erosion sees the box's edge as background just as it sees the image's, and nothing
    that survives the erosion can dilate past it.
    """
    rows = np.flatnonzero(image.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(image.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _first_last(indices: np.ndarray) -> tuple[int, int]:
    return int(indices[0]), int(indices[-1])


def crop_info(image: np.ndarray, mode: str) -> CropInfo:
    """Crop window and landmarks for one raw image; `mode` 'left'/'right' from orientation.

    DataError when no tissue survives the erosion (an all-black or near-empty image).
    """
    height, width = image.shape
    box = tissue_box(image)
    eroded = erode(image[box] > 0, MORPHOLOGY_ITERATIONS) if box else None
    if eroded is None or not eroded.any():
        raise DataError(
            "no breast tissue found: the image is black (all zero) or holds only thin "
            "structures that vanish under the crop's 100-pixel erosion; check that the file "
            "is the mammogram itself and that its pixel values are not all zero"
        )
    mask = np.zeros(image.shape, bool)
    mask[box] = dilate(largest_component(eroded), MORPHOLOGY_ITERATIONS)

    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1

    bottom_y = bottom - 1
    bottom_x_first, bottom_x_last = _first_last(np.flatnonzero(mask[bottom_y]))

    top -= min(top, BUFFER_SIZE)
    bottom += min(height - bottom, BUFFER_SIZE)
    if mode == "left":
        distance_from_starting_side = width - right
        left -= min(left, BUFFER_SIZE)
    else:
        distance_from_starting_side = left
        right += min(width - right, BUFFER_SIZE)

    # Landmarks in the cropped frame, mirrored for mode "left" as x -> width - x (the
    # reference's convention, not width - 1 - x: kept for parity).
    bottom_y -= top
    if mode == "left":
        bottom_x_first, bottom_x_last = right - bottom_x_last, right - bottom_x_first
    else:
        bottom_x_first, bottom_x_last = bottom_x_first - left, bottom_x_last - left

    cropped_mask = mask[top:bottom, left:right]
    ignore_height = int(cropped_mask.shape[0] * RIGHTMOST_SEARCH_FROM)
    search_area = cropped_mask[ignore_height:]
    columns_with_tissue = np.flatnonzero(search_area.any(axis=0))
    rightmost_x = int(columns_with_tissue[-1 if mode == "right" else 0])
    rightmost_y_first, rightmost_y_last = _first_last(
        np.flatnonzero(search_area[:, rightmost_x]) + ignore_height
    )
    if mode == "left":
        rightmost_x = cropped_mask.shape[1] - rightmost_x

    return CropInfo(
        window_location=(top, bottom, left, right),
        rightmost_points=((rightmost_y_first, rightmost_y_last), rightmost_x),
        bottommost_points=(bottom_y, (bottom_x_first, bottom_x_last)),
        distance_from_starting_side=int(distance_from_starting_side),
    )


def crop_image(image: np.ndarray, info: CropInfo) -> np.ndarray:
    """The raw pixels inside the crop window, dtype kept."""
    top, bottom, left, right = info.window_location
    return image[top:bottom, left:right]
