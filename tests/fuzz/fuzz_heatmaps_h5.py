"""Fuzz the heatmap reader of classify and visualize: any bytes give a heatmap of the
expected shape, or a DataError; no other file is opened.
"""

from __future__ import annotations

import sys

import atheris
import numpy as np
from fuzzing import input_file

with atheris.instrument_imports(include=["stages"]):
    from stages.core.errors import DataError
    from stages.io.heatmaps_h5 import read_heatmap

# The seeds' heatmaps are 20 x 10 (stored transposed, 10 x 20).
SHAPE = (20, 10)


def fuzz_one_input(data: bytes) -> None:
    path = input_file(data, "heatmap.hdf5")
    try:
        heatmap = read_heatmap(path, SHAPE, exam="fuzz", file="heatmap.hdf5")
    except DataError:
        return
    assert heatmap.shape == SHAPE and heatmap.dtype in (np.float32, np.float64), heatmap.dtype


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
