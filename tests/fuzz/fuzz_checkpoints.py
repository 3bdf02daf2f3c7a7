"""Fuzz checkpoint loading (generate_heatmaps, classify, bcd models): any bytes give weights
that fit the model, or a CheckpointError; nothing in them runs.

The first byte picks what the rest is: even, the pickle of a torch zip checkpoint (wrapped
here in a valid archive with four 64-byte storages, so mutations reach torch's weights-only
unpickler instead of failing the archive's CRCs); odd, the whole file (zip or legacy format).
"""

from __future__ import annotations

import io
import sys
import zipfile

import atheris
import torch
from fuzzing import input_file
from torch import nn

with atheris.instrument_imports(include=["stages"]):
    from stages.nets.checkpoints import (
        CheckpointError,
        check_fits,
        read_classifier_state_dict,
        read_patch_state_dict,
    )

# What the seeds' state dicts are for: a convolution and a batch norm.
MODEL = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
STORAGES, STORAGE_BYTES = 4, 64


def checkpoint_file(data: bytes) -> bytes:
    if not data or data[0] % 2:
        return data[1:]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        zipped.writestr("archive/data.pkl", data[1:])
        zipped.writestr("archive/byteorder", "little")
        for key in range(STORAGES):
            zipped.writestr(f"archive/data/{key}", bytes(range(STORAGE_BYTES)))
        zipped.writestr("archive/version", "3\n")
    return archive.getvalue()


def fuzz_one_input(data: bytes) -> None:
    path = input_file(checkpoint_file(data), "model.p")
    for read in (read_patch_state_dict, read_classifier_state_dict):
        try:
            state_dict = read(path)
            check_fits(MODEL, state_dict, path)
            MODEL.load_state_dict({**MODEL.state_dict(), **state_dict})
        except CheckpointError:
            continue


if __name__ == "__main__":
    torch.set_num_threads(1)
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
