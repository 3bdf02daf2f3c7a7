"""Fuzz `bcd ingest`'s DICOM reading: any bytes as a .dcm become a skipped file with its
reason, an image that cannot be loaded (a DataError, the file's report row), or a 16-bit
greyscale image. Anything else escapes and is a crash."""

from __future__ import annotations

import sys
import warnings

import atheris
import numpy as np
from fuzzing import input_file

with atheris.instrument_imports(include=["bcd", "pydicom"]):
    from bcd.ingest import dicom
    from stages.core.errors import DataError

# pydicom warns about every odd value; the warnings say nothing the outcome does not.
warnings.simplefilter("ignore")
# Images up to the real limit decode correctly but slowly (pure-Python RLE); a smaller
# limit keeps each input under the 2 s the fuzzer allows, and the guard is the same code.
dicom.MAX_PIXELS = 1 << 20


def fuzz_one_input(data: bytes) -> None:
    # The name is a clue to side and view, so that mutated headers still reach the pixels.
    path = input_file(data, "src/L_CC.dcm")
    found = dicom.scan(path.parent, [path], "folder")
    assert len(found.candidates) + len(found.skipped) == 1
    for entry in found.skipped:
        assert entry.reason and len(entry.reason) < 1000, entry.reason
    for candidate in found.candidates:
        try:
            image, _ = candidate.load()
        except DataError as error:
            assert len(error.reason) < 1000, error.reason
            continue
        assert image.ndim == 2 and image.dtype == np.uint16, (image.shape, image.dtype)


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
