"""`bcd ingest` on a plain folder of `<exam>_<L|R>_<CC|MLO>[_<n>].png` files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO

from bcd.ingest.cli import main as ingest
from bcd.ingest.pngs import parse_name

SAMPLE = REPO / ".." / "shared" / "data" / "nyu_sample"


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    """The real sample mammograms at 1/8 size (raw NYU orientation)."""
    return {
        side: np.ascontiguousarray(
            cv2.imread(str(SAMPLE / f"1_{side}_CC.png"), cv2.IMREAD_UNCHANGED)[::8, ::8]
        )
        for side in ("L", "R")
    }


def write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def run(src: Path, dst: Path, *args: str) -> tuple[int, dict]:
    code = ingest([str(src), str(dst), "--quiet", *args])
    return code, json.loads(dst.with_name(f"{dst.name}.ingest.json").read_text())


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("0_L_CC.png", ("0", "L-CC", "")),
        ("P_00038_R_MLO_2.png", ("P_00038", "R-MLO", "2")),
        ("a.b-c_l_mlo_extra.PNG", ("a.b-c", "L-MLO", "extra")),
        ("0_L_XCCL.png", None),
        ("0_LCC.png", None),
        ("0_L_CC.jpg", None),
    ],
)
def test_names(name, parsed):
    assert parse_name(name) == parsed


def test_png_folder_with_extra_images_bad_names_and_an_incomplete_exam(tmp_path, small):
    src = tmp_path / "src"
    for view in ("L_CC", "R_CC", "L_MLO", "R_MLO"):
        write(src / f"a_{view}.png", small[view[0]])
    second = np.ascontiguousarray(small["L"][::-1])
    write(src / "a_L_CC_2.png", second)
    write(src / "more" / "b_L_CC.png", small["L"])
    write(src / "bad name_L_CC.png", small["L"])
    write(src / "a_L_CC_2" / "x.png", small["L"])
    (src / "readme.txt").write_text("hello")
    code, report = run(src, tmp_path / "dst", "--keep-ids")
    assert code == 0
    assert report["source_type"] == "png"
    assert [p.name for p in (tmp_path / "dst").iterdir()] == ["a"]
    exam = json.loads((tmp_path / "dst" / "a" / "exam.json").read_text())
    assert exam == {
        "horizontal_flip": "NO",
        "L-CC": ["a_L_CC", "a_L_CC_2"],
        "R-CC": ["a_R_CC"],
        "L-MLO": ["a_L_MLO"],
        "R-MLO": ["a_R_MLO"],
    }
    np.testing.assert_array_equal(read_png(tmp_path / "dst" / "a" / "a_L_CC_2.png"), second)
    reasons = {row["file"]: row.get("reason") for row in report["files"]}
    assert "lacks R-CC, L-MLO, R-MLO" in reasons["more/b_L_CC.png"]
    assert "invalid exam id 'bad name'" in reasons["bad name_L_CC.png"]
    assert reasons["readme.txt"].startswith("name does not follow")
    assert reasons["a_L_CC_2/x.png"].startswith("name does not follow")


def test_8_bit_pngs_are_scaled_and_mirrored_exams_detected(tmp_path, small):
    src = tmp_path / "src"
    for view in ("L_CC", "R_CC", "L_MLO", "R_MLO"):
        eight_bit = (small[view[0]] >> 8).astype(np.uint8)
        write(src / f"m_{view}.png", np.ascontiguousarray(eight_bit[:, ::-1]))
    code, report = run(src, tmp_path / "dst", "--keep-ids")
    assert code == 0
    exam = json.loads((tmp_path / "dst" / "m" / "exam.json").read_text())
    assert exam["horizontal_flip"] == "YES"
    written = read_png(tmp_path / "dst" / "m" / "m_R_CC.png")
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, (small["R"] >> 8)[:, ::-1].astype(np.uint16) * 257)
    assert report["files"][0]["notes"] == ["8-bit values scaled to 16 bits"]


def test_colour_png_is_skipped_with_reason(tmp_path, small):
    src = tmp_path / "src"
    for view in ("L_CC", "R_CC", "L_MLO", "R_MLO"):
        write(src / f"c_{view}.png", small[view[0]])
    write(src / "c_L_CC.png", np.dstack([small["L"]] * 3))
    code, report = run(src, tmp_path / "dst")
    assert code == 1
    reasons = {row["file"]: row.get("reason") for row in report["files"]}
    assert reasons["c_L_CC.png"].startswith("RGB PNG: mammograms must be single-channel greyscale")
    assert "no readable image for L-CC" in reasons["c_R_CC.png"]


def test_nothing_recognisable(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("x")
    code, report = run(tmp_path / "src", tmp_path / "dst")
    assert code == 1
    assert report["source_type"] is None
    assert report["files"] == [
        {
            "file": "a.txt",
            "status": "skipped",
            "reason": "SRC holds no example exam folder, NYU exam list, DICOM file or PNG",
        }
    ]
