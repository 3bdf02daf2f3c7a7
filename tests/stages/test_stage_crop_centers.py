"""crop and extract_centers run as real subprocesses on a /pfs-shaped tree."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from helpers import VIEWS, python_module_cmd, write_exam

BCD = Path(sys.executable).with_name("bcd")


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)


def make_bad_exams(data: Path) -> dict[str, str]:
    """One broken exam per kind of bad input; returns exam -> expected words of the reason."""
    expected = {}
    write_exam(data, "missing_view")
    exam = json.loads((data / "missing_view" / "exam.json").read_text())
    del exam["R-MLO"]
    (data / "missing_view" / "exam.json").write_text(json.dumps(exam))
    expected["missing_view"] = 'missing view "R-MLO"'

    write_exam(data, "bad_json")
    (data / "bad_json" / "exam.json").write_text("{not json")
    expected["bad_json"] = "not valid JSON"

    write_exam(data, "missing_file")
    (data / "missing_file" / "missing_file_L_MLO.png").unlink()
    expected["missing_file"] = "not found"

    write_exam(data, "truncated")
    png = data / "truncated" / "truncated_R_CC.png"
    png.write_bytes(png.read_bytes()[:500])
    expected["truncated"] = "truncated"

    write_exam(data, "rgb")
    cv2.imwrite(str(data / "rgb" / "rgb_L_CC.png"), np.full((900, 700, 3), 200, np.uint8))
    expected["rgb"] = "RGB PNG"

    write_exam(data, "black")
    cv2.imwrite(str(data / "black" / "black_L_MLO.png"), np.zeros((900, 700), np.uint16))
    expected["black"] = "no breast tissue"

    write_exam(data, "tiny")
    narrow = np.zeros((900, 700), np.uint16)
    narrow[100:500, :205] = 1500  # survives the erosion, but crops to 255 px wide
    cv2.imwrite(str(data / "tiny" / "tiny_L_CC.png"), narrow)
    expected["tiny"] = "under the 256 px"

    write_exam(data, "bad_flip")
    exam = json.loads((data / "bad_flip" / "exam.json").read_text())
    exam["horizontal_flip"] = "maybe"
    (data / "bad_flip" / "exam.json").write_text(json.dumps(exam))
    expected["bad_flip"] = "horizontal_flip"
    return expected


def test_good_and_bad_exams_through_both_stages(pfs):
    data = pfs / "sample_data"
    write_exam(data, "good_no", flip="NO", seed=1)
    write_exam(data, "good_yes", flip="YES", seed=1)
    expected_errors = make_bad_exams(data)

    crop = run(python_module_cmd("stages.crop", "--pfs", str(pfs)))
    assert crop.returncode == 0, crop.stderr
    out = pfs / "out"
    for exam_id, words in expected_errors.items():
        record = json.loads((out / exam_id / "error.json").read_text())
        assert record["exam"] == exam_id and record["stage"] == "crop"
        assert words in record["reason"], record
        assert sorted(p.name for p in (out / exam_id).iterdir()) == ["error.json"]
        assert f"ERROR {exam_id}" in crop.stderr
    for exam_id in ("good_no", "good_yes"):
        cropped = json.loads((out / exam_id / "cropped_exam_list.json").read_text())
        for view in VIEWS:
            name = cropped[view][0]
            image = cv2.imread(str(out / exam_id / "cropped_images" / f"{name}.png"), -1)
            assert image.dtype == np.uint16
            top, bottom, left, right = cropped["window_location"][view][0]
            assert image.shape == (bottom - top, right - left)
    # Mirrored exam (flip YES) crops to mirrored pixels with mirrored windows.
    no = json.loads((out / "good_no" / "cropped_exam_list.json").read_text())
    yes = json.loads((out / "good_yes" / "cropped_exam_list.json").read_text())
    for view in VIEWS:
        top, bottom, left, right = no["window_location"][view][0]
        assert yes["window_location"][view][0] == [top, bottom, 700 - right, 700 - left]
    assert not list(out.glob(".bcd-staging*"))

    # extract_centers reads `crop` and passes the error records through.
    centres_pfs = pfs.parent / "pfs2"
    centres_pfs.mkdir()
    shutil.copytree(out, centres_pfs / "crop")
    centres = run([str(BCD), "stage", "extract_centers", "--pfs", str(centres_pfs)])
    assert centres.returncode == 0, centres.stderr
    for exam_id in expected_errors:
        record = json.loads((centres_pfs / "out" / exam_id / "error.json").read_text())
        assert record["stage"] == "crop"
    data_no = json.loads((centres_pfs / "out" / "good_no" / "data.json").read_text())
    data_yes = json.loads((centres_pfs / "out" / "good_yes" / "data.json").read_text())
    for view in VIEWS:
        # Both exams are the same breasts mirrored: the model sees the same image.
        y_no, x_no = data_no["best_center"][view][0]
        y_yes, x_yes = data_yes["best_center"][view][0]
        assert y_no == y_yes and abs(x_no - x_yes) <= 1
        assert data_no["window_location"] == no["window_location"]


def test_strict_exits_non_zero_on_data_errors(pfs):
    write_exam(pfs / "sample_data", "fine")
    write_exam(pfs / "sample_data", "black")
    cv2.imwrite(str(pfs / "sample_data" / "black" / "black_R_CC.png"), np.zeros((9, 9), np.uint16))
    result = run(python_module_cmd("stages.crop", "--pfs", str(pfs), "--strict"))
    assert result.returncode == 1
    assert (pfs / "out" / "fine" / "cropped_exam_list.json").is_file()


def test_pfs_root_from_environment(pfs):
    write_exam(pfs / "sample_data", "env_exam")
    result = run(python_module_cmd("stages.crop"), env={"PFS_ROOT": str(pfs), "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert (pfs / "out" / "env_exam" / "cropped_exam_list.json").is_file()
