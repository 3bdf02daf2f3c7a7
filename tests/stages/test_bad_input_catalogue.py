"""The README's bad-input catalogue, row by row, through the real stage entrypoints.

Each bad exam must become that exam's error record (one clear line naming exam and
file), the good exam beside it must complete, and the stage must exit 0. Rows covered
elsewhere are named in the README's table (test_stage_crop_centers,
test_stage_pachyderm_example, test_visualize, test_ingest_*, test_nets_checkpoints).
"""

import json
import os
import pickle
import shlex
import struct
import subprocess
import zlib

import cv2
import h5py
import numpy as np
import png
import pytest
from helpers import png_chunk, python_module_cmd, write_exam

from stages.io.heatmaps_h5 import heatmap_path, write_heatmap


def run_stage(module, pfs, *args):
    return subprocess.run(
        python_module_cmd(module, "--pfs", str(pfs), *args),
        capture_output=True,
        text=True,
        timeout=600,
    )


def bomb_png():
    header = struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def set_exam_json(exam_dir, change):
    exam = json.loads((exam_dir / "exam.json").read_text())
    change(exam)
    (exam_dir / "exam.json").write_text(json.dumps(exam))


CROP_ROWS = {
    "bomb": ("decompression-bomb guard", "bomb_L_CC.png"),
    "float": ("not a PNG file", "float_L_CC.png"),
    "grey_alpha": ("greyscale+alpha PNG", "grey_alpha_L_CC.png"),
    "traversal": ("invalid image name", "exam.json"),
    "wrong_type": ("non-empty list", "exam.json"),
    "not_object": ("JSON object", "exam.json"),
    "eight_bit_ok": (None, None),
}


def test_crop_catalogue_rows(pfs):
    data = pfs / "sample_data"
    write_exam(data, "good")
    write_exam(data, "bomb")
    (data / "bomb" / "bomb_L_CC.png").write_bytes(bomb_png())
    write_exam(data, "float")
    cv2.imwrite(str(data / "float" / "float_L_CC.tiff"), np.ones((900, 700), np.float32))
    os.replace(data / "float" / "float_L_CC.tiff", data / "float" / "float_L_CC.png")
    write_exam(data, "grey_alpha")
    grey_alpha = np.zeros((900, 700 * 2), np.uint16)  # grey, alpha interleaved per row
    with open(data / "grey_alpha" / "grey_alpha_L_CC.png", "wb") as handle:
        png.Writer(700, 900, greyscale=True, alpha=True, bitdepth=16).write(handle, grey_alpha)
    write_exam(data, "traversal")
    set_exam_json(data / "traversal", lambda e: e.update({"L-CC": ["../good/good_L_CC"]}))
    write_exam(data, "wrong_type")
    set_exam_json(data / "wrong_type", lambda e: e.update({"R-CC": "wrong_type_R_CC"}))
    write_exam(data, "not_object")
    (data / "not_object" / "exam.json").write_text("[1, 2]")
    write_exam(data, "eight_bit_ok")
    image = cv2.imread(str(data / "eight_bit_ok" / "eight_bit_ok_L_CC.png"), -1)
    cv2.imwrite(
        str(data / "eight_bit_ok" / "eight_bit_ok_L_CC.png"), (image // 16).astype(np.uint8)
    )

    result = run_stage("stages.crop", pfs)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = pfs / "out"
    assert (out / "good" / "cropped_exam_list.json").is_file()
    for exam, (reason, file) in CROP_ROWS.items():
        if reason is None:
            assert (out / exam / "cropped_exam_list.json").is_file()
            continue
        assert sorted(p.name for p in (out / exam).iterdir()) == ["error.json"]
        record = json.loads((out / exam / "error.json").read_text())
        assert reason in record["reason"] and record["file"] == file, record
        assert record["exam"] == exam and record["stage"] == "crop"
        [line] = [line for line in result.stderr.splitlines() if f"ERROR {exam} " in line]
        assert file in line
    assert "eight_bit_ok/eight_bit_ok_L_CC.png: 8-bit image" in result.stderr


class RunsShellOnLoad:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("module", ["stages.generate_heatmaps", "stages.classify"])
def test_malicious_or_mismatched_checkpoint_is_refused_before_any_exam(pfs, module):
    import torch

    models = pfs / "models"
    models.mkdir()
    marker = pfs / "pwned"
    is_patch_model = module.endswith("heatmaps")
    name = "sample_patch_model.p" if is_patch_model else "sample_image_model.p"
    args = () if is_patch_model else ("--model", "image")

    def wrapped(state):  # the published layouts: bare for the patch model, else {"model": ...}
        return state if is_patch_model else {"model": state}

    with open(models / name, "wb") as handle:
        pickle.dump(wrapped({"x": RunsShellOnLoad(marker)}), handle)
    result = run_stage(module, pfs, *args)
    assert result.returncode == 2
    assert name in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not (pfs / "out").exists()

    torch.save(wrapped({"unexpected.weight": torch.zeros(2)}), models / name)
    result = run_stage(module, pfs, *args)
    assert result.returncode == 2 and name in result.stderr and "unexpected" in result.stderr


def test_classify_heatmap_missing_or_misshapen_fails_only_that_exam(tmp_path):
    """Exams with heatmaps; one loses a heatmap file, one gets a wrong-shaped one, one an
    external link to another file, one a provenance that is not JSON."""
    pfs = tmp_path / "pfs"
    data = pfs / "sample_data"
    exams = ("good", "missing", "misshapen", "linked", "bad_provenance")
    for exam in exams:
        write_exam(data, exam, size=(800, 600))
    assert run_stage("stages.crop", pfs).returncode == 0
    os.replace(pfs / "out", pfs / "crop")
    assert run_stage("stages.extract_centers", pfs).returncode == 0
    os.replace(pfs / "out", pfs / "extract_centers")
    for exam in exams:
        cropped = json.loads((pfs / "crop" / exam / "cropped_exam_list.json").read_text())
        for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
            name = cropped[view][0]
            shape = cv2.imread(
                str(pfs / "crop" / exam / "cropped_images" / f"{name}.png"), -1
            ).shape
            for kind in ("benign", "malignant"):
                write_heatmap(
                    heatmap_path(pfs / "generate_heatmaps" / exam, kind, name),
                    np.full(shape, 0.5, np.float32),
                )
    (heatmap_path(pfs / "generate_heatmaps" / "missing", "benign", "missing_R_MLO")).unlink()
    misshapen = heatmap_path(pfs / "generate_heatmaps" / "misshapen", "malignant", "misshapen_L_CC")
    with h5py.File(misshapen, "w") as h5:
        h5.create_dataset("image", data=np.zeros((10, 20), np.float32))
    linked = heatmap_path(pfs / "generate_heatmaps" / "linked", "benign", "linked_L_CC")
    with h5py.File(linked, "w") as h5:
        good = heatmap_path(pfs / "generate_heatmaps" / "good", "benign", "good_L_CC")
        h5["image"] = h5py.ExternalLink(str(good), "/image")
    (pfs / "generate_heatmaps" / "bad_provenance" / "heatmaps_provenance.json").write_text("{")
    subprocess.run(
        python_module_cmd("bcd.cli", "models", "demo", str(pfs / "models")),
        check=True,
        capture_output=True,
    )
    result = run_stage("stages.classify", pfs, "--model", "imageheatmaps", "--no-augmentation")
    assert result.returncode == 0, result.stderr
    out = pfs / "out"
    assert (out / "good" / "imageheatmaps_predictions.csv").is_file()
    missing = json.loads((out / "missing" / "error.json").read_text())
    assert missing["file"] == "heatmaps/heatmap_benign/missing_R_MLO.hdf5"
    assert "heatmap missing" in missing["reason"]
    wrong = json.loads((out / "misshapen" / "error.json").read_text())
    assert "20x10" in wrong["reason"] and "regenerate" in wrong["reason"]
    link = json.loads((out / "linked" / "error.json").read_text())
    assert link["file"] == "heatmaps/heatmap_benign/linked_L_CC.hdf5"
    assert "'image' is an external link" in link["reason"]
    provenance = json.loads((out / "bad_provenance" / "error.json").read_text())
    assert provenance["file"] == "heatmaps_provenance.json"
    assert "not valid JSON" in provenance["reason"]
