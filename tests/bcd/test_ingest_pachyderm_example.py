"""`bcd ingest` on Pachyderm's breast-cancer-detection example's sample_data as it ships:
`<exam>/L_CC.png`... plus `<exam>/gen_exam_list_before_cropping.pkl` (one exam each)."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import subprocess
from pathlib import Path

import cv2
import numpy as np
from helpers import NYU_SAMPLE, VIEWS, python_module_cmd, write_exam

from bcd.ingest.cli import main as ingest
from stages.io.exam_files import EXAMPLE_EXAM_LIST

# Which real image stands in for each of the example's files (the example's sample_data/1
# L_CC.png and R_CC.png are ../shared's 1_L_CC.png and 1_R_CC.png; CC stands in for MLO).
REAL = {"L_CC": "1_L_CC", "R_CC": "1_R_CC", "L_MLO": "1_L_CC", "R_MLO": "1_R_CC"}


def example_exam(flip: str = "NO") -> dict:
    return {"horizontal_flip": flip, **{view: [view.replace("-", "_")] for view in VIEWS}}


def write_real_example_exam(exam_dir: Path, flip: str) -> None:
    """The real images in the example's layout; flip YES = every image mirrored."""
    exam_dir.mkdir(parents=True)
    for name, source in REAL.items():
        if flip == "NO":
            (exam_dir / f"{name}.png").symlink_to((NYU_SAMPLE / f"{source}.png").resolve())
        else:
            image = cv2.imread(str(NYU_SAMPLE / f"{source}.png"), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(exam_dir / f"{name}.png"), np.ascontiguousarray(np.fliplr(image)))
    (exam_dir / EXAMPLE_EXAM_LIST).write_bytes(pickle.dumps([example_exam(flip)]))


def run(src: Path, dst: Path, *args: str) -> tuple[int, dict]:
    code = ingest([str(src), str(dst), "--quiet", *args])
    return code, json.loads(dst.with_name(f"{dst.name}.ingest.json").read_text())


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_a_folder_of_real_example_exams_gives_one_exam_per_folder(tmp_path):
    src = tmp_path / "sample_data"
    write_real_example_exam(src / "0", "NO")
    write_real_example_exam(src / "1", "YES")
    code, report = run(src, tmp_path / "dst")
    assert code == 0
    assert report["source_type"] == "pachyderm-example"
    exam_ids = sorted(p.name for p in (tmp_path / "dst").iterdir())
    assert len(exam_ids) == 2 and all(exam_id.startswith("ex-") for exam_id in exam_ids)
    by_folder = {
        row["file"].split("/")[0]: row["exam"] for row in report["files"] if row.get("exam")
    }
    assert sorted(by_folder.values()) == exam_ids
    for folder, flip in (("0", "NO"), ("1", "YES")):
        exam_id = by_folder[folder]
        exam = json.loads((tmp_path / "dst" / exam_id / "exam.json").read_text())
        assert exam["horizontal_flip"] == flip  # as the pickle says
        for view in VIEWS:
            (name,) = exam[view]
            assert name == f"{exam_id}_{view.replace('-', '_')}"
            source = src / folder / f"{view.replace('-', '_')}.png"
            # Written as stored: the flip says how they lie, nothing is mirrored.
            np.testing.assert_array_equal(
                read_png(tmp_path / "dst" / exam_id / f"{name}.png"), read_png(source)
            )
    assert not any("mirrored" in note for exam in report["exams"] for note in exam["notes"])
    files = {row["file"]: row for row in report["files"]}
    assert files[f"1/{EXAMPLE_EXAM_LIST}"]["status"] == "used"
    assert files["1/R_MLO.png"]["view_from"] == "exam list"

    code, _ = run(src, tmp_path / "kept", "--keep-ids")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["0", "1"]


def test_one_folder_at_a_time_keeps_every_exam_and_the_same_ids(tmp_path):
    src = tmp_path / "sample_data"
    for index, folder in enumerate(("0", "1", "2")):
        write_exam(src, folder, seed=index, layout="example")
    # Folder by folder into one DST (SRC/2 given as its pickle): none replaces another.
    for src_path in (src / "0", src / "1", src / "2" / EXAMPLE_EXAM_LIST):
        code, report = run(src_path, tmp_path / "dst", "--salt", "s")
        assert code == 0 and report["source_type"] == "pachyderm-example"
    one_by_one = sorted(p.name for p in (tmp_path / "dst").iterdir())
    assert len(one_by_one) == 3
    # ... the same exams, under the same ids, as ingesting the whole folder.
    assert run(src, tmp_path / "whole", "--salt", "s")[0] == 0
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == one_by_one


class RunsShellOnLoad:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_unusable_example_folders_are_skipped_and_the_others_ingested(tmp_path):
    src = tmp_path / "sample_data"
    marker = tmp_path / "pwned"
    reasons = {
        "hostile": ([example_exam(), RunsShellOnLoad(marker)], "refused to load posix.system"),
        "empty": ([], "the exam list holds 0 exams, not 1"),
        "several": ([example_exam(), example_exam()], "the exam list holds 2 exams, not 1"),
        "traversal": (
            [{**example_exam(), "L-CC": ["../good/L_CC"]}],
            "invalid image name in \"L-CC\" of exam traversal '../good/L_CC'",
        ),
    }
    write_exam(src, "good", layout="example")
    for folder, (exams, _) in reasons.items():
        write_exam(src, folder, layout="example")
        (src / folder / EXAMPLE_EXAM_LIST).write_bytes(pickle.dumps(exams))
    (src / "stray").mkdir()
    (src / "stray" / "L_CC.png").write_bytes((src / "good" / "L_CC.png").read_bytes())

    code, report = run(src, tmp_path / "dst", "--keep-ids")
    assert code == 0
    assert not marker.exists()
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["good"]
    skipped = [exam["reason"] for exam in report["skipped_exams"]]
    for folder, (_, words) in reasons.items():
        assert any(f"exam {folder}" in reason and words in reason for reason in skipped), folder
    files = {row["file"]: row for row in report["files"]}
    assert files[f"several/{EXAMPLE_EXAM_LIST}"]["reason"].startswith("the exam list holds 2")
    assert (
        files["several/L_CC.png"]["reason"] == "exam several refused: its exam list cannot be used"
    )
    assert files["traversal/R_CC.png"]["reason"].startswith("exam traversal refused: invalid")
    assert files["stray/L_CC.png"]["reason"] == (
        f"not in an exam folder (one holding {EXAMPLE_EXAM_LIST})"
    )


def test_an_ingested_example_exam_crops_like_the_folder_given_as_is(tmp_path):
    as_is, ingested = tmp_path / "as_is", tmp_path / "ingested"
    write_exam(as_is / "sample_data", "0", flip="YES", layout="example")
    assert run(as_is / "sample_data", ingested / "sample_data", "--keep-ids")[0] == 0
    for pfs in (as_is, ingested):
        crop = subprocess.run(
            python_module_cmd("stages.crop", "--pfs", str(pfs)),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert crop.returncode == 0 and "ERROR" not in crop.stderr, crop.stderr
    listed = json.loads((as_is / "out" / "0" / "cropped_exam_list.json").read_text())
    converted = json.loads((ingested / "out" / "0" / "cropped_exam_list.json").read_text())
    assert converted["horizontal_flip"] == listed["horizontal_flip"] == "YES"
    for view in VIEWS:
        assert converted["window_location"][view] == listed["window_location"][view]
        np.testing.assert_array_equal(
            read_png(ingested / "out" / "0" / "cropped_images" / f"{converted[view][0]}.png"),
            read_png(as_is / "out" / "0" / "cropped_images" / f"{listed[view][0]}.png"),
        )
