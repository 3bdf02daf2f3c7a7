"""Fuzz the stage's PNG reader and what crop does with the image: any bytes give a
greyscale image crop can cut, or a DataError.
"""

from __future__ import annotations

import sys

import atheris
import numpy as np
from fuzzing import input_file

with atheris.instrument_imports(include=["stages"]):
    from stages.core.cropping import crop_image, crop_info
    from stages.core.errors import DataError
    from stages.core.orientation import crop_mode
    from stages.io.images import read_greyscale_png


def fuzz_one_input(data: bytes) -> None:
    path = input_file(data, "image.png")
    try:
        image = read_greyscale_png(path, exam="fuzz", file="image.png")
    except DataError:
        return
    assert image.ndim == 2 and image.dtype in (np.uint8, np.uint16), (image.shape, image.dtype)
    # The view from the image's first pixel: both crop modes are reached.
    view = "L-CC" if image.flat[0] % 2 else "R-MLO"
    try:
        info = crop_info(image, crop_mode(view, "NO"))
    except DataError:
        return
    crop_image(image, info)


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
