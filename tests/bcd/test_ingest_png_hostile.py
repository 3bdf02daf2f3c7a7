"""`bcd ingest` of a PNG folder with hostile files: read through the stages' PNG reader, so a
decompression bomb or a truncated file is a skipped view with its reason, and the other
exams are written."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import pytest
from helpers import VIEWS, breast_phantom

from bcd.ingest.cli import main as ingest


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb(width: int, height: int) -> bytes:
    """A valid 16-bit greyscale PNG header claiming width x height, with a tiny IDAT."""
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def write_exam(src: Path, exam: str) -> None:
    for view in VIEWS:
        side, angle = view.split("-")
        image = breast_phantom(96, 64, facing_right=side == "L", seed=len(view))
        cv2.imwrite(str(src / f"{exam}_{side}_{angle}.png"), image)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (bomb(40000, 40000), "40000x40000"),
        (bomb(4000, 4000)[:40], "truncated"),
        (b"", "PNG"),
    ],
    ids=["bomb", "truncated", "empty"],
)
def test_a_hostile_png_skips_its_view_not_the_other_exams(
    tmp_path: Path, content: bytes, reason: str
):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    write_exam(src, "good")
    write_exam(src, "bad")
    (src / "bad_L_CC.png").write_bytes(content)
    assert ingest([str(src), str(dst), "--quiet"]) == 0
    report = json.loads((tmp_path / "dst.ingest.json").read_text())
    assert report["summary"]["exams_written"] == 1
    row = next(entry for entry in report["files"] if entry["file"] == "bad_L_CC.png")
    assert row["status"] == "skipped"
    assert reason in row["reason"], row["reason"]
