"""`bcd ingest` on the NYU reference layout: a pickled exam list plus a folder of PNGs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO

from bcd.ingest import nyu
from bcd.ingest.cli import main as ingest
from stages.core.errors import DataError
from stages.core.exam import exam_from_dict
from stages.io.exam_lists import load_exam_list

SAMPLE = REPO / ".." / "shared" / "data" / "nyu_sample"


def exam_dict(name: str, flip: str = "NO", **views: list[str]) -> dict:
    exam = {"horizontal_flip": flip}
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        side, angle = view.split("-")
        exam[view] = views.get(view.replace("-", "_"), [f"{name}_{side}_{angle}"])
    return exam


def nyu_layout(root: Path, exams: list, names: list[str]) -> Path:
    """An exam list beside `images/`, whose PNGs link to the real sample images."""
    (root / "images").mkdir(parents=True)
    for name in names:
        side = name.split("_")[1]
        (root / "images" / f"{name}.png").symlink_to((SAMPLE / f"1_{side}_CC.png").resolve())
    with open(root / nyu.EXAM_LIST, "wb") as handle:
        pickle.dump(exams, handle)
    return root


def run(src: Path, dst: Path, *args: str) -> tuple[int, dict]:
    code = ingest([str(src), str(dst), "--quiet", *args])
    return code, json.loads(dst.with_name(f"{dst.name}.ingest.json").read_text())


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_benign_exam_list_is_ingested_and_incomplete_exam_skipped(tmp_path):
    exams = [exam_dict("1"), exam_dict("2", R_MLO=[])]
    names = ["1_L_CC", "1_R_CC", "1_L_MLO", "1_R_MLO", "2_L_CC", "2_R_CC", "2_L_MLO"]
    src = nyu_layout(tmp_path / "src", exams, names)
    code, report = run(src, tmp_path / "dst", "--keep-ids")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["1"]
    exam = exam_from_dict("1", json.loads((tmp_path / "dst" / "1" / "exam.json").read_text()))
    assert exam.horizontal_flip == "NO"
    assert exam.images["R-MLO"] == ("1_R_MLO",)
    np.testing.assert_array_equal(
        read_png(tmp_path / "dst" / "1" / "1_R_MLO.png"), read_png(SAMPLE / "1_R_CC.png")
    )
    assert report["source_type"] == "nyu"
    assert report["skipped_exams"] == [
        {"exam": "2", "reason": "exam 2 lacks R-MLO: every exam needs all four views"}
    ]
    files = {row["file"]: row for row in report["files"]}
    assert files["exam_list_before_cropping.pkl"]["status"] == "used"
    assert files["images/1_L_MLO.png"]["view_from"] == "exam list"


def test_ids_are_pseudonymous_by_default_and_src_may_be_the_pickle(tmp_path):
    src = nyu_layout(tmp_path / "src", [exam_dict("1")], ["1_L_CC", "1_R_CC", "1_L_MLO", "1_R_MLO"])
    assert run(src / nyu.EXAM_LIST, tmp_path / "dst")[0] == 0
    (exam_dir,) = (tmp_path / "dst").iterdir()
    assert exam_dir.name.startswith("ex-")
    assert sorted(p.name for p in exam_dir.iterdir())[0] == f"{exam_dir.name}_L_CC.png"


def test_stated_flip_is_kept_and_disagreement_noted(tmp_path):
    src = nyu_layout(
        tmp_path / "src", [exam_dict("1", flip="YES")], ["1_L_CC", "1_R_CC", "1_L_MLO", "1_R_MLO"]
    )
    code, report = run(src, tmp_path / "dst", "--keep-ids")
    assert code == 0
    exam = json.loads((tmp_path / "dst" / "1" / "exam.json").read_text())
    assert exam["horizontal_flip"] == "YES"
    assert (
        "1_L_CC: the pixels suggest horizontal_flip NO, the source says YES"
        in (report["exams"][0]["notes"])
    )


class _OpensAFile:
    """A pickle payload: unpickling it calls open(path, 'w'), creating the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_by_name_without_running(tmp_path):
    # The payload is real: plain pickle runs it.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps([_OpensAFile(proof)])).pop().close()
    assert proof.exists()

    marker = tmp_path / "marker"
    src = nyu_layout(tmp_path / "src", [], ["1_L_CC"])
    (src / nyu.EXAM_LIST).write_bytes(pickle.dumps([exam_dict("1"), _OpensAFile(marker)]))
    with pytest.raises(DataError, match=r"refused to load io\.open"):
        load_exam_list(src / nyu.EXAM_LIST)
    code, report = run(src, tmp_path / "dst")
    assert code == 1
    assert not marker.exists()
    files = {row["file"]: row for row in report["files"]}
    assert "refused to load io.open" in files["exam_list_before_cropping.pkl"]["reason"]
    assert files["images/1_L_CC.png"]["reason"] == "the exam list could not be read"


def test_os_system_payload_is_refused(tmp_path):
    marker = tmp_path / "marker"

    class RunsAShellCommand:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([RunsAShellCommand()]))
    with pytest.raises(DataError, match=r"refused to load posix\.system"):
        load_exam_list(path)
    assert not marker.exists()


def test_unsafe_image_name_refuses_its_exam_only(tmp_path):
    exams = [exam_dict("1"), exam_dict("2", L_CC=["../../etc/passwd"])]
    names = ["1_L_CC", "1_R_CC", "1_L_MLO", "1_R_MLO", "2_R_CC", "2_L_MLO", "2_R_MLO"]
    src = nyu_layout(tmp_path / "src", exams, names)
    code, report = run(src, tmp_path / "dst", "--keep-ids")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["1"]
    (refused,) = report["skipped_exams"]
    assert refused["reason"].startswith(
        "invalid image name in \"L-CC\" of exam 2 '../../etc/passwd': use only letters"
    )
    files = {row["file"]: row for row in report["files"]}
    assert files["images/2_R_CC.png"]["reason"].startswith("exam 2 refused: ")


def test_exam_list_must_be_a_list(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps({"horizontal_flip": "NO"}))
    with pytest.raises(DataError, match="must be a list of exam dicts"):
        load_exam_list(path)


def test_exam_keys_are_unique():
    exams = [exam_dict("7"), exam_dict("7"), exam_dict("8"), {"horizontal_flip": "NO"}, "junk"]
    assert nyu.exam_keys(exams) == ["7.0", "7.1", "8", "exam.3", "exam.4"]
