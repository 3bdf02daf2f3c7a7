"""`bcd ingest` on hostile DICOM files (crafted, or found by tests/fuzz/fuzz_dicom_ingest.py):
each one is a skipped file with its reason, the good exam beside it is still written, and
an error that is not the file's fault is never turned into a skip."""

from __future__ import annotations

import errno
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import REPO, TEST_DATA, breast_phantom, make_dicom, write_dicom_exam
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bcd.ingest import dicom
from bcd.ingest.cli import main as ingest
from stages.io.images import MAX_PIXELS

# Inputs found by fuzzing (and the 8-byte file of the issue), each with its reason.
FOUND = TEST_DATA / "hostile_dicom"
FOUND_REASONS = {
    "eight_bytes.dcm": "unreadable DICOM: malformed data element: unpack requires",
    # A SOPClassUID of hundreds of characters, once echoed whole into the reason.
    "long_sop_class_uid.dcm": "no image in this file (",
    "unknown_vr.dcm": "unreadable DICOM: NotImplementedError: Unknown Value Representation",
    "sequence_item_without_tag.dcm": "unreadable DICOM: OSError: No tag to read at file",
    "view_code_sequence_not_a_sequence.dcm": "unreadable DICOM: ViewCodeSequence holds bytes data",
}
BAD_STUDY = "1.2.826.0.1.3680043.8.498.2002"


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    """Small phantoms, each breast against its own chest wall (L faces right)."""
    return {
        "L": breast_phantom(96, 64, facing_right=True, seed=1),
        "R": breast_phantom(96, 64, facing_right=False, seed=2),
    }


def run(src: Path, dst: Path) -> tuple[int, dict[str, Any]]:
    code = ingest([str(src), str(dst), "--quiet"])
    return code, json.loads(dst.with_name(f"{dst.name}.ingest.json").read_text())


def row(report: dict[str, Any], file: str) -> dict[str, Any]:
    return next(entry for entry in report["files"] if entry["file"] == file)


def test_every_found_input_has_a_reason():
    assert sorted(path.name for path in FOUND.iterdir()) == sorted(FOUND_REASONS)


def test_found_inputs_beside_a_good_exam_are_skipped_with_their_reason(tmp_path, images):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_dicom_exam(src, images)
    for name in FOUND_REASONS:
        shutil.copy(FOUND / name, src / name)
    code, report = run(src, dst)
    assert code == 0
    assert report["summary"]["exams_written"] == 1 and report["summary"]["used"] == 4
    for name, reason in FOUND_REASONS.items():
        entry = row(report, name)
        assert entry["status"] == "skipped"
        assert entry["reason"].startswith(reason), entry["reason"]
        assert len(entry["reason"]) < 400


def _lut(bits: int) -> Sequence:
    table = Dataset()
    table.add_new("LUTDescriptor", "US", [16, 0, bits])
    table.add_new("LUTData", "US", list(range(16)))
    return Sequence([table])


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"WindowCenter": 100, "WindowWidth": 0}, "WindowCenter 100 / WindowWidth 0 is no window"),
        ({"WindowCenter": "inf", "WindowWidth": 10}, "WindowCenter inf / WindowWidth 10 is no"),
        ({"WindowCenter": "nan", "WindowWidth": 10}, "WindowCenter nan / WindowWidth 10 is no"),
        (
            {"RescaleSlope": 0, "RescaleIntercept": 0, "WindowCenter": 9, "WindowWidth": 9},
            "RescaleSlope 0 / RescaleIntercept 0 would make every pixel one value",
        ),
        (
            {"RescaleSlope": "nan", "WindowCenter": 9, "WindowWidth": 9},
            "RescaleSlope nan / RescaleIntercept 0",
        ),
        ({"VOILUTSequence": _lut(0)}, "the VOI LUT gives 0-bit values, not 1 to 16"),
        ({"VOILUTSequence": _lut(40)}, "the VOI LUT gives 40-bit values"),
        ({"Rows": 40000, "Columns": 40000}, f"over the {MAX_PIXELS:,}-pixel limit"),
        ({"Rows": 0}, "the header gives 64x0 pixels: no image"),
        ({"Rows": 960}, "(122,880 bytes) but the file holds"),
        ({"BitsStored": 40}, "BitsAllocated 16 / BitsStored 40"),
        ({"BitsAllocated": 12}, "BitsAllocated 12 / BitsStored 16"),
        ({"ViewModifierCodeSequence": None, "VOILUTSequence": None}, None),
    ],
)
def test_a_hostile_view_skips_its_exam_not_the_others(tmp_path, images, tags, reason):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_dicom_exam(src, images)
    write_dicom_exam(src, images, study=BAD_STUDY, skip=("L-CC",))
    make_dicom(src / "bad_LCC.dcm", images["L"], study=BAD_STUDY, **tags)
    code, report = run(src, dst)
    assert code == 0
    if reason is None:  # the control: the same exam without the hostile tags is written
        assert report["summary"]["exams_written"] == 2
        return
    assert report["summary"]["exams_written"] == 1
    entry = row(report, "bad_LCC.dcm")
    assert entry["status"] == "skipped"
    assert reason in entry["reason"], entry["reason"]
    if "window" in reason or "Rescale" in reason or "LUT" in reason:
        assert "ingest with --no-voi to keep the stored values" in entry["reason"]
    assert len(entry["reason"]) < 400


def test_a_value_of_the_wrong_length_is_a_reason(tmp_path, images):
    # Rows (US) stored in 3 bytes: pydicom's BytesLengthException when it is read.
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_dicom_exam(src, images)
    write_dicom_exam(src, images, study=BAD_STUDY, skip=("L-CC",))
    path = make_dicom(src / "bad_LCC.dcm", images["L"], study=BAD_STUDY)
    rows = b"\x28\x00\x10\x00US\x02\x00" + struct.pack("<H", 96)
    data = path.read_bytes()
    assert data.count(rows) == 1
    path.write_bytes(data.replace(rows, b"\x28\x00\x10\x00US\x03\x00" + rows[-2:] + b"\0"))
    code, report = run(src, dst)
    assert code == 0 and report["summary"]["exams_written"] == 1
    reason = row(report, "bad_LCC.dcm")["reason"]
    assert reason.startswith("unreadable DICOM: BytesLengthException: Expected total bytes")
    assert len(reason) < 400


def test_nothing_ingestible_exits_1_with_the_report(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in FOUND_REASONS:
        shutil.copy(FOUND / name, src / name)
    done = subprocess.run(
        [sys.executable, "-m", "bcd.cli", "ingest", str(src), str(dst), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "nothing could be ingested" in done.stderr
    report = json.loads((tmp_path / "dst.ingest.json").read_text())
    assert {entry["file"] for entry in report["files"]} == set(FOUND_REASONS)


def _raised(action) -> Exception:
    try:
        action()
    except Exception as error:
        return error
    raise AssertionError("nothing was raised")


def _raise(error: Exception) -> None:
    raise error


def test_only_the_files_own_faults_become_skips():
    # Raised by pydicom on a file's missing attribute: the file's fault.
    assert dicom.is_file_fault(_raised(lambda: Dataset().BitsStored))
    assert dicom.is_file_fault(_raised(lambda: struct.unpack("<I", b"\0")))
    # The same kind of error raised by the project's own code is a bug and propagates.
    bug = _raised(lambda: dicom._text(object(), "PatientID"))  # type: ignore[arg-type]
    assert isinstance(bug, AttributeError) and not dicom.is_file_fault(bug)
    # The machine's faults never become a file's reason.
    assert not dicom.is_file_fault(_raised(lambda: _raise(OSError(errno.EIO, "I/O error"))))
    assert not dicom.is_file_fault(_raised(lambda: _raise(MemoryError())))
