"""Folders of PNGs named `<exam>_<L|R>_<CC|MLO>[_<n>].png`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import numpy as np

from bcd.ingest import pixels
from bcd.ingest.records import Candidate, Scan, skipped
from stages.core.errors import DataError
from stages.core.exam import check_name
from stages.io.images import read_greyscale_png

NAME_PATTERN = re.compile(
    r"(?P<exam>.+)_(?P<side>[LR])_(?P<angle>CC|MLO)(?:_(?P<n>[A-Za-z0-9]+))?\.png", re.IGNORECASE
)


def parse_name(file_name: str) -> tuple[str, str, str] | None:
    """(exam, view, suffix) from '<exam>_<L|R>_<CC|MLO>[_<n>].png', else None."""
    match = NAME_PATTERN.fullmatch(file_name)
    if not match:
        return None
    view = f"{match['side'].upper()}-{match['angle'].upper()}"
    return match["exam"], view, match["n"] or ""


def read_png(path: Path) -> tuple[np.ndarray, list[str]]:
    """A greyscale PNG as uint16 (8-bit values scaled like pypng does), with notes.

    Read through the stages' own reader, so the same header guards (colour type, bit
    depth, pixel limit, truncation) apply before any pixel is decoded.
    """
    if not path.is_file():
        raise DataError("file not found")
    image = read_greyscale_png(path)
    if image.dtype == np.uint8:
        return pixels.to_16_bits(image, 8), ["8-bit values scaled to 16 bits"]
    return image, []


def scan(src: Path, files: Iterable[Path]) -> Scan:
    """Candidates for every PNG named after its exam and view; other files are skipped."""
    found = Scan("png")
    first_of: dict[tuple[str, str, str], str] = {}
    for path in files:
        file = path.relative_to(src).as_posix()
        parsed = parse_name(path.name)
        if parsed is None:
            found.skipped.append(
                skipped(file, "name does not follow <exam>_<L|R>_<CC|MLO>[_<n>].png")
            )
            continue
        exam, view, suffix = parsed
        try:
            check_name(exam, "exam id", exam=exam)
        except DataError as error:
            found.skipped.append(skipped(file, str(error)))
            continue
        if (exam, view, suffix.upper()) in first_of:
            found.skipped.append(
                skipped(
                    file, f"same exam, view and suffix as {first_of[exam, view, suffix.upper()]}"
                )
            )
            continue
        first_of[exam, view, suffix.upper()] = file
        found.candidates.append(
            Candidate(
                file=file,
                key=exam,
                view=view,
                load=partial(read_png, path),
                order=_suffix_order(suffix),
                view_from="file name",
                side_from="file name",
            )
        )
    return found


def _suffix_order(suffix: str) -> tuple[int, int, str]:
    """No suffix first, then numeric suffixes by value, then the others by name."""
    if not suffix:
        return (0, 0, "")
    return (1, int(suffix), "") if suffix.isdigit() else (2, 0, suffix)
