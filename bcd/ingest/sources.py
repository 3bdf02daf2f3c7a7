"""What SRC holds: the Pachyderm example's exam folders, an NYU exam list, DICOM files, or
a folder of PNGs (in that order)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bcd.ingest import pachyderm_example
from bcd.ingest.nyu import find_exam_list

SOURCE_TYPES = (pachyderm_example.SOURCE, "nyu", "dicom", "png")
DICOM_SUFFIXES = (".dcm", ".dicom")


def looks_like_dicom(path: Path) -> bool:
    """True for a file with the DICOM preamble ('DICM' at byte 128) or a .dcm name."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def source_files(src: Path) -> list[Path]:
    """Every file under SRC (SRC's folder when SRC is a file), sorted."""
    root = src if src.is_dir() else src.parent
    return sorted(path for path in root.rglob("*") if path.is_file())


def detect(src: Path, files: Sequence[Path]) -> str | None:
    """'pachyderm-example' when SRC is or holds the example's exam folders, else 'nyu' when
    SRC has an exam list, else 'dicom' when any file is DICOM, else 'png' when any file is
    a PNG; None when SRC holds none of them."""
    if pachyderm_example.find_exam_folders(src):
        return pachyderm_example.SOURCE
    if find_exam_list(src) is not None:
        return "nyu"
    if any(looks_like_dicom(path) for path in files):
        return "dicom"
    if any(path.suffix.lower() == ".png" for path in files):
        return "png"
    return None
