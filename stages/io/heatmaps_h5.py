"""Heatmap files in the reference's layout: HDF5 dataset `image`, transposed, lzf."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from stages.core.errors import DataError
from stages.io.pfs import atomic_write_bytes

HEATMAPS_DIR = "heatmaps"
KINDS = ("malignant", "benign")


def heatmap_path(exam_dir: Path, kind: str, image_name: str) -> Path:
    """`<exam_dir>/heatmaps/heatmap_<kind>/<image>.hdf5`."""
    return exam_dir / HEATMAPS_DIR / f"heatmap_{kind}" / f"{image_name}.hdf5"


def write_heatmap(path: Path, heatmap: np.ndarray) -> None:
    """Save an (H, W) float32 heatmap as the reference does (stored transposed), atomically."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.create_dataset("image", data=heatmap.T, compression="lzf")
    atomic_write_bytes(path, buffer.getvalue())


def read_heatmap(
    path: Path, expected_shape: tuple[int, int], *, exam: str, file: str
) -> np.ndarray:
    """Load an (H, W) heatmap; DataError naming the file when missing, unreadable or misshapen."""
    if not path.is_file():
        raise DataError(
            "heatmap missing: run generate_heatmaps for this exam", exam=exam, file=file
        )
    try:
        with h5py.File(path, "r") as h5:
            heatmap = np.asarray(h5["image"]).T
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"unreadable heatmap file ({error})", exam=exam, file=file) from error
    if heatmap.shape != tuple(expected_shape):
        size = "x".join(str(n) for n in heatmap.shape) or "a scalar"
        raise DataError(
            f"heatmap is {size} but its image is "
            f"{expected_shape[0]}x{expected_shape[1]}: regenerate the heatmaps",
            exam=exam,
            file=file,
        )
    return heatmap
