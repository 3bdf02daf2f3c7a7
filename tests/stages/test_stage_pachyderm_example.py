"""crop on exam folders laid out as Pachyderm's breast-cancer-detection example ships them:
`L_CC.png`... and `gen_exam_list_before_cropping.pkl` (a one-exam NYU exam list), no
exam.json. Real subprocesses, real images from ../shared."""

import hashlib
import json
import os
import pickle
import shlex
import subprocess

import cv2
import numpy as np
from helpers import NYU_SAMPLE, SHARED, VIEWS, load_case, python_module_cmd, write_exam

from stages.io.exam_files import EXAM_JSON, EXAMPLE_EXAM_LIST

# The example's own pickle for its exam folders (sample_data/0 ... 3), as it ships it.
EXAMPLE_EXAM = {
    "horizontal_flip": "NO",
    "L-CC": ["L_CC"],
    "R-CC": ["R_CC"],
    "L-MLO": ["L_MLO"],
    "R-MLO": ["R_MLO"],
}


def run_stage(module, pfs):
    return subprocess.run(
        python_module_cmd(module, "--pfs", str(pfs)), capture_output=True, text=True, timeout=600
    )


def write_real_exam(exam_dir, case, layout):
    """A reference case made of the real sample images (the example's own sample_data/1
    L_CC.png and R_CC.png), named as the example names them, in either layout."""
    expected = load_case(case)
    exam_dir.mkdir(parents=True)
    exam = {**EXAMPLE_EXAM, "horizontal_flip": expected["horizontal_flip"]}
    for record in expected["images"]:
        source = record["source"]
        name = exam[record["view"]][0]
        mirrored = exam_dir.parent / f"mirrored-{os.path.basename(source['path'])}"
        if source["mirrored"] and not mirrored.exists():
            image = cv2.imread(str(SHARED / source["path"]), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(mirrored), np.ascontiguousarray(np.fliplr(image)))
        target = mirrored if source["mirrored"] else SHARED / source["path"]
        (exam_dir / f"{name}.png").symlink_to(target.resolve())
    if layout == "example":
        (exam_dir / EXAMPLE_EXAM_LIST).write_bytes(pickle.dumps([exam]))
    else:
        (exam_dir / EXAM_JSON).write_text(json.dumps(exam))
    return expected


def test_real_example_exams_crop_exactly_like_their_exam_json_form(pfs):
    data = pfs / "sample_data"
    cases = {"no": "real-flip-no", "yes": "real-flip-yes"}
    expected = {}
    for flip, case in cases.items():
        expected[flip] = write_real_exam(data / f"example-{flip}", case, "example")
        write_real_exam(data / f"json-{flip}", case, "exam.json")
    assert (NYU_SAMPLE / "1_L_CC.png").resolve() == (data / "example-no" / "L_CC.png").resolve()

    crop = run_stage("stages.crop", pfs)
    assert crop.returncode == 0, crop.stderr
    assert "ERROR" not in crop.stderr
    out = pfs / "out"
    for flip in cases:
        example, as_json = out / f"example-{flip}", out / f"json-{flip}"
        listed = json.loads((example / "cropped_exam_list.json").read_text())
        assert listed == json.loads((as_json / "cropped_exam_list.json").read_text())
        assert listed["horizontal_flip"] == flip.upper()
        names = sorted(p.name for p in (example / "cropped_images").iterdir())
        assert names == ["L_CC.png", "L_MLO.png", "R_CC.png", "R_MLO.png"]
        for name in names:
            ours = (example / "cropped_images" / name).read_bytes()
            assert ours == (as_json / "cropped_images" / name).read_bytes(), (flip, name)
        # ... and both are the NYU reference's crops of these images.
        for record in expected[flip]["images"]:
            view = record["view"]
            assert listed["window_location"][view] == [record["window_location"]]
            cropped = cv2.imread(str(example / "cropped_images" / f"{listed[view][0]}.png"), -1)
            digest = hashlib.sha256(np.ascontiguousarray(cropped).tobytes()).hexdigest()
            assert digest == record["cropped_sha256"], (flip, view)

    # Downstream sees the same: extract_centers on the crops gives the same data.json.
    centres_pfs = pfs.parent / "centres"
    centres_pfs.mkdir()
    (centres_pfs / "crop").symlink_to(out)
    centres = run_stage("stages.extract_centers", centres_pfs)
    assert centres.returncode == 0, centres.stderr
    for flip in cases:
        data_json = json.loads((centres_pfs / "out" / f"example-{flip}" / "data.json").read_text())
        as_json = json.loads((centres_pfs / "out" / f"json-{flip}" / "data.json").read_text())
        assert data_json == as_json
        for record in expected[flip]["images"]:
            assert data_json["best_center"][record["view"]] == [record["best_center"]]


class RunsShellOnLoad:
    """A pickle payload: unpickling it runs a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def set_exam_list(exam_dir, exams):
    (exam_dir / EXAMPLE_EXAM_LIST).write_bytes(pickle.dumps(exams))


def test_bad_example_exams_become_error_records_and_the_others_go_on(pfs, tmp_path):
    data = pfs / "sample_data"
    marker = tmp_path / "pwned"
    # The payload is real: an unrestricted unpickler runs it.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps([RunsShellOnLoad(proof)]))
    assert proof.exists()

    expected = {}  # exam -> (file named in its error record, words of the reason)
    write_exam(data, "good", layout="example")
    write_exam(data, "good_yes", flip="YES", layout="example", seed=3)
    write_exam(data, "agreeing", layout="example")
    (data / "agreeing" / EXAM_JSON).write_text(json.dumps(EXAMPLE_EXAM))

    write_exam(data, "hostile", layout="example")
    set_exam_list(data / "hostile", [EXAMPLE_EXAM, RunsShellOnLoad(marker)])
    expected["hostile"] = (EXAMPLE_EXAM_LIST, "refused to load posix.system")
    write_exam(data, "memo_bomb", layout="example")  # one corrupt byte asking for 64 GiB
    (data / "memo_bomb" / EXAMPLE_EXAM_LIST).write_bytes(b"\x80\x02]r\xff\xff\xff\xff.")
    expected["memo_bomb"] = (EXAMPLE_EXAM_LIST, "corrupt pickle: memo index 4294967295")
    write_exam(data, "truncated", layout="example")
    listed = data / "truncated" / EXAMPLE_EXAM_LIST
    listed.write_bytes(listed.read_bytes()[:40])
    expected["truncated"] = (EXAMPLE_EXAM_LIST, "cannot read the exam list")
    write_exam(data, "empty", layout="example")
    set_exam_list(data / "empty", [])
    expected["empty"] = (EXAMPLE_EXAM_LIST, "the exam list holds 0 exams, not 1")
    write_exam(data, "several", layout="example")
    set_exam_list(data / "several", [EXAMPLE_EXAM, EXAMPLE_EXAM])
    expected["several"] = (EXAMPLE_EXAM_LIST, "the exam list holds 2 exams, not 1")
    write_exam(data, "not_a_dict", layout="example")
    set_exam_list(data / "not_a_dict", ["L_CC"])
    expected["not_a_dict"] = (EXAMPLE_EXAM_LIST, "must hold an exam dict, not str")
    write_exam(data, "disagreeing", layout="example")
    (data / "disagreeing" / EXAM_JSON).write_text(
        json.dumps({**EXAMPLE_EXAM, "horizontal_flip": "YES"})
    )
    expected["disagreeing"] = (
        EXAMPLE_EXAM_LIST,
        f"{EXAM_JSON} and {EXAMPLE_EXAM_LIST} describe different exams "
        "(horizontal_flip: 'YES' vs 'NO')",
    )
    write_exam(data, "missing_view", layout="example")
    set_exam_list(data / "missing_view", [{k: v for k, v in EXAMPLE_EXAM.items() if k != "R-MLO"}])
    expected["missing_view"] = (EXAMPLE_EXAM_LIST, 'missing view "R-MLO"')
    write_exam(data, "bad_flip", layout="example")
    set_exam_list(data / "bad_flip", [{**EXAMPLE_EXAM, "horizontal_flip": "maybe"}])
    expected["bad_flip"] = (EXAMPLE_EXAM_LIST, '"horizontal_flip" must be "NO" or "YES"')
    write_exam(data, "traversal", layout="example")
    set_exam_list(data / "traversal", [{**EXAMPLE_EXAM, "L-CC": ["../good/L_CC"]}])
    expected["traversal"] = (EXAMPLE_EXAM_LIST, "invalid image name")
    write_exam(data, "missing_file", layout="example")
    (data / "missing_file" / "L_MLO.png").unlink()
    expected["missing_file"] = ("L_MLO.png", "image listed in the exam but not found")
    write_exam(data, "neither", layout="example")
    (data / "neither" / EXAMPLE_EXAM_LIST).unlink()
    expected["neither"] = (EXAM_JSON, f"{EXAM_JSON} not found")

    crop = run_stage("stages.crop", pfs)
    assert crop.returncode == 0, crop.stderr
    assert "Traceback" not in crop.stderr
    assert not marker.exists()
    out = pfs / "out"
    for exam, (file, words) in expected.items():
        assert sorted(p.name for p in (out / exam).iterdir()) == ["error.json"], exam
        record = json.loads((out / exam / "error.json").read_text())
        assert record["exam"] == exam and record["stage"] == "crop"
        assert record["file"] == file and words in record["reason"], record
        [line] = [line for line in crop.stderr.splitlines() if f"ERROR {exam} " in line]
        assert file in line
    for exam, flip in (("good", "NO"), ("good_yes", "YES"), ("agreeing", "NO")):
        cropped = json.loads((out / exam / "cropped_exam_list.json").read_text())
        assert {view: cropped[view] for view in VIEWS} == {
            view: EXAMPLE_EXAM[view] for view in VIEWS
        }
        assert cropped["horizontal_flip"] == flip
