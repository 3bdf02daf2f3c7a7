"""Heatmap files in the reference's layout: HDF5 dataset `image`, transposed, lzf.

A heatmap file is input to classify and visualize, so it is read as untrusted: its size is
bounded by the heatmap it must hold, it is opened from memory, and `image` must be a plain
dataset (a hard link, its data inside the file: no soft, external or virtual indirection
that would make the stage open another file) of the expected shape and a float dtype,
checked from its metadata before any of its data is read.
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from stages.core.errors import DataError, brief
from stages.io.pfs import atomic_write_bytes, read_at_most

HEATMAPS_DIR = "heatmaps"
KINDS = ("malignant", "benign")
DATASET = "image"
# HDF5's own structures beside the data (superblock, object headers, chunk index).
HDF5_OVERHEAD_BYTES = 1 << 20
# What errors reading an HDF5 file from memory raise: each is that file's DataError.
READ_ERRORS = (OSError, KeyError, TypeError, ValueError, RuntimeError, OverflowError)
_LINK_KINDS = {h5py.SoftLink: "a soft link", h5py.ExternalLink: "an external link"}


def heatmap_path(exam_dir: Path, kind: str, image_name: str) -> Path:
    """`<exam_dir>/heatmaps/heatmap_<kind>/<image>.hdf5`."""
    return exam_dir / HEATMAPS_DIR / f"heatmap_{kind}" / f"{image_name}.hdf5"


def write_heatmap(path: Path, heatmap: np.ndarray) -> None:
    """Save an (H, W) float32 heatmap as the reference does (stored transposed), atomically."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.create_dataset(DATASET, data=heatmap.T, compression="lzf")
    atomic_write_bytes(path, buffer.getvalue())


def read_heatmap(
    path: Path, expected_shape: tuple[int, int], *, exam: str, file: str
) -> np.ndarray:
    """Load an (H, W) heatmap; DataError naming the file when missing, unreadable, misshapen
    or not a plain dataset. An OSError reading the file from disk propagates (a fault).
    """
    if not path.is_file():
        raise DataError(
            "heatmap missing: run generate_heatmaps for this exam", exam=exam, file=file
        )
    height, width = expected_shape
    limit = height * width * np.dtype(np.float64).itemsize + HDF5_OVERHEAD_BYTES
    data = read_at_most(path, limit)
    if data is None:
        raise DataError(
            f"heatmap file is larger than a {height}x{width} heatmap can be ({limit:,} bytes "
            "at most): regenerate the heatmaps",
            exam=exam,
            file=file,
        )
    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            dataset = _plain_dataset(h5, (width, height))
            heatmap: np.ndarray = dataset[()].T
    except DataError as error:
        raise DataError(f"{error.reason}: regenerate the heatmaps", exam=exam, file=file) from None
    except READ_ERRORS as error:
        raise DataError(
            f"unreadable heatmap file ({brief(error)}): regenerate the heatmaps",
            exam=exam,
            file=file,
        ) from error
    return heatmap


def _plain_dataset(h5: h5py.File, stored_shape: tuple[int, int]) -> h5py.Dataset:
    """The `image` dataset, checked from its metadata only; DataError (without exam/file)."""
    link = h5.get(DATASET, getlink=True)
    if link is None:
        raise DataError(f"unreadable heatmap file (no dataset {DATASET!r} in it)")
    if not isinstance(link, h5py.HardLink):
        kind = _LINK_KINDS.get(type(link), f"a {type(link).__name__}")
        raise DataError(
            f"{DATASET!r} is {kind}, not a dataset stored in the file: "
            "heatmap files hold their data themselves"
        )
    dataset = h5[DATASET]
    if not isinstance(dataset, h5py.Dataset):
        raise DataError(f"{DATASET!r} is a {type(dataset).__name__}, not a dataset")
    if dataset.is_virtual or dataset.id.get_create_plist().get_external_count():
        raise DataError(
            f"{DATASET!r} keeps its data in other files: heatmap files hold their data themselves"
        )
    if dataset.shape != stored_shape:
        shape = dataset.shape or ()
        size = "x".join(str(n) for n in reversed(shape)) or "a scalar"
        raise DataError(f"heatmap is {size} but its image is {stored_shape[1]}x{stored_shape[0]}")
    if dataset.dtype.kind != "f" or dataset.dtype.itemsize not in (4, 8):
        raise DataError(f"heatmap values are {dataset.dtype}, not 32- or 64-bit floats")
    if dataset.chunks is not None and any(
        chunk > size for chunk, size in zip(dataset.chunks, stored_shape, strict=True)
    ):
        raise DataError(f"{DATASET!r} has chunks larger than itself: a corrupt or hostile file")
    return dataset
