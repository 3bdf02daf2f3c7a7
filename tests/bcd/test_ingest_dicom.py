"""`bcd ingest` on real DICOM files written with pydicom (from the NYU sample PNGs and
from synthetic arrays): views, fallbacks, skips, pixels, orientation, grouping, ids."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from helpers import DICOM_PATIENT, DICOM_STUDY, REPO, make_dicom, write_dicom_exam
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForProcessing,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from bcd.ingest import dicom
from bcd.ingest.cli import main as ingest
from stages.core.exam import VIEWS, exam_from_dict

SAMPLE = REPO / ".." / "shared" / "data" / "nyu_sample"
PATIENT = DICOM_PATIENT
STUDY = DICOM_STUDY


@pytest.fixture(scope="module")
def full_size() -> dict[str, np.ndarray]:
    """The real sample mammograms (uint16, raw NYU orientation), read in place."""
    return {
        side: cv2.imread(str(SAMPLE / f"1_{side}_CC.png"), cv2.IMREAD_UNCHANGED)
        for side in ("L", "R")
    }


@pytest.fixture(scope="module")
def small(full_size) -> dict[str, np.ndarray]:
    """The sample mammograms at 1/8 size: real content, fast to encode."""
    return {side: np.ascontiguousarray(image[::8, ::8]) for side, image in full_size.items()}


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def run(src: Path, dst: Path, *args: str) -> tuple[int, dict]:
    code = ingest([str(src), str(dst), "--quiet", *args])
    report_path = dst.with_name(f"{dst.name}.ingest.json")
    return code, json.loads(report_path.read_text())


def exams_in(dst: Path) -> list[Path]:
    return sorted(p for p in dst.iterdir() if p.is_dir())


def load_exam(exam_dir: Path):
    return exam_from_dict(exam_dir.name, json.loads((exam_dir / "exam.json").read_text()))


def rows(report: dict) -> dict[str, dict]:
    return {Path(row["file"]).name: row for row in report["files"]}


def test_sample_exam_keeps_16_bit_pixels_exactly(tmp_path, full_size):
    write_dicom_exam(tmp_path / "src", full_size)
    code, report = run(tmp_path / "src", tmp_path / "dst")
    assert code == 0
    (exam_dir,) = exams_in(tmp_path / "dst")
    assert re.fullmatch(r"ex-[0-9a-f]{12}", exam_dir.name)
    exam = load_exam(exam_dir)
    assert exam.horizontal_flip == "NO"
    for view, names in exam.images.items():
        assert names == (f"{exam_dir.name}_{view.replace('-', '_')}",)
        written = read_png(exam_dir / f"{names[0]}.png")
        assert written.dtype == np.uint16
        np.testing.assert_array_equal(written, full_size[view[0]])
    assert sorted(p.name for p in exam_dir.iterdir()) == sorted(
        ["exam.json", *(f"{n}.png" for names in exam.images.values() for n in names)]
    )
    for row in report["files"]:
        assert row["status"] == "used"
        assert (row["view_from"], row["side_from"]) == ("ViewPosition", "ImageLaterality")
    # Nothing identifying reaches DST, and the report and salt live beside it.
    text = "\n".join(
        [*(str(p) for p in (tmp_path / "dst").rglob("*")), (exam_dir / "exam.json").read_text()]
    )
    assert PATIENT not in text and STUDY not in text
    assert {p.name for p in tmp_path.iterdir()} == {"src", "dst", "dst.ingest.json", "dst.salt"}


def test_12_bit_values_are_scaled_like_pypng(tmp_path, small):
    png = pytest.importorskip("png")
    stored = {side: image >> 4 for side, image in small.items()}
    for view in VIEWS:
        side, angle = view.split("-")
        make_dicom(
            tmp_path / "src" / f"{side}{angle}.dcm", stored[side], side=side, view=angle, bits=12
        )
    assert run(tmp_path / "src", tmp_path / "dst")[0] == 0
    (exam_dir,) = exams_in(tmp_path / "dst")
    for side in ("L", "R"):
        # What the NYU conversion helper produced: pypng writing the 12-bit values.
        reference = tmp_path / f"pypng_{side}.png"
        with open(reference, "wb") as handle:
            height, width = stored[side].shape
            writer = png.Writer(width, height, bitdepth=12, greyscale=True)
            writer.write(handle, stored[side].tolist())
        expected = read_png(reference)
        np.testing.assert_array_equal(
            read_png(exam_dir / f"{exam_dir.name}_{side}_CC.png"), expected
        )


def test_bit_depth_rule_by_hand(tmp_path):
    values = np.array([[0, 1, 2048, 4095]], dtype=np.uint16)
    pixels, notes = dicom.to_monochrome2_16(_header(bits=12), values)
    # 65535 / 4095 = 16.0036...; 2048 * that = 32775.50..., rounded up.
    assert pixels.tolist() == [[0, 16, 32776, 65535]]
    assert notes == ["12-bit values scaled to 16 bits"]
    eight, _ = dicom.to_monochrome2_16(_header(bits=8), np.array([[0, 1, 255]], dtype=np.uint16))
    assert eight.tolist() == [[0, 257, 65535]]
    sixteen, notes = dicom.to_monochrome2_16(_header(bits=16), np.array([[0, 7, 65535]]))
    assert sixteen.tolist() == [[0, 7, 65535]] and notes == []


def test_monochrome1_is_inverted(tmp_path, small):
    twelve = {side: image >> 4 for side, image in small.items()}
    for view in VIEWS:
        side, angle = view.split("-")
        make_dicom(
            tmp_path / "mono2" / f"{side}{angle}.dcm", twelve[side], side=side, view=angle, bits=12
        )
        make_dicom(
            tmp_path / "mono1" / f"{side}{angle}.dcm",
            4095 - twelve[side],
            side=side,
            view=angle,
            bits=12,
            photometric="MONOCHROME1",
            study="1.2.3.9",
        )
    assert run(tmp_path / "mono2", tmp_path / "out2")[0] == 0
    code, report = run(tmp_path / "mono1", tmp_path / "out1")
    assert code == 0
    (plain,), (inverted,) = exams_in(tmp_path / "out2"), exams_in(tmp_path / "out1")
    for view in ("L_CC", "R_MLO"):
        np.testing.assert_array_equal(
            read_png(inverted / f"{inverted.name}_{view}.png"),
            read_png(plain / f"{plain.name}_{view}.png"),
        )
    assert "MONOCHROME1 inverted" in report["files"][0]["notes"]


def test_window_is_applied_unless_no_voi():
    header = _header(bits=12, WindowCenter=1024.5, WindowWidth=1025)
    stored = np.array([[0, 511, 1024, 1537, 4095]], dtype=np.uint16)
    pixels, notes = dicom.to_monochrome2_16(header, stored)
    # DICOM LINEAR window: below 512 -> 0, above 1536 -> top; 1024 sits at the middle
    # level 2047.5 -> 2048 (12-bit), which is 32776 in 16 bits.
    assert pixels.tolist() == [[0, 0, 32776, 65535, 65535]]
    assert notes[0] == "window applied (center 1024.5, width 1025)"
    raw, notes = dicom.to_monochrome2_16(header, stored, apply_voi=False)
    assert raw.tolist() == [[0, 8178, 16388, 24598, 65535]]


def test_voi_lut_table_is_applied_at_its_own_depth():
    table = Dataset()
    table.LUTDescriptor = [4096, 0, 12]
    table.LUTData = [value // 2 for value in range(4096)]
    header = _header(bits=12, VOILUTSequence=Sequence([table]))
    pixels, notes = dicom.to_monochrome2_16(header, np.array([[0, 2, 4095]], dtype=np.uint16))
    # Table entries 0, 1, 2047 on a 12-bit scale.
    assert pixels.tolist() == [[0, 16, 32759]]  # 2047 * 65535 / 4095 = 32759.498
    assert notes[0] == "VOI LUT applied"


def _header(bits: int, **tags) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = bits
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _view_code(code: str, meaning: str, modifier: str | None = None) -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SCT", meaning
    if modifier:
        mod = Dataset()
        mod.CodeValue, mod.CodingSchemeDesignator, mod.CodeMeaning = "0", "SCT", modifier
        item.ViewModifierCodeSequence = Sequence([mod])
    return Sequence([item])


@pytest.mark.parametrize(
    ("name", "tags", "view", "view_from", "side_from"),
    [
        ("a.dcm", {}, "L-CC", "ViewPosition", "ImageLaterality"),
        (
            "a.dcm",
            {"ImageLaterality": None, "Laterality": "R"},
            "R-CC",
            "ViewPosition",
            "Laterality",
        ),
        (
            "a.dcm",
            {
                "ViewPosition": None,
                "ViewCodeSequence": _view_code("399368009", "medio-lateral oblique"),
            },
            "L-MLO",
            "ViewCodeSequence",
            "ImageLaterality",
        ),
        # Secondary capture without view tags: the description says it.
        (
            "a.dcm",
            {"ImageLaterality": None, "ViewPosition": None, "SeriesDescription": "R MLO"},
            "R-MLO",
            "SeriesDescription",
            "SeriesDescription",
        ),
        (
            "a.dcm",
            {"ImageLaterality": None, "ViewPosition": None, "ProtocolName": "LCC"},
            "L-CC",
            "ProtocolName",
            "ProtocolName",
        ),
        (
            "a.dcm",
            {"ImageLaterality": None, "ViewPosition": None, "PatientOrientation": "R\\MLO"},
            "R-MLO",
            "PatientOrientation",
            "PatientOrientation",
        ),
        # A proper PatientOrientation names no side; the series laterality does.
        (
            "a.dcm",
            {"ImageLaterality": None, "PatientOrientation": ["P", "L"], "Laterality": "R"},
            "R-CC",
            "ViewPosition",
            "Laterality",
        ),
        (
            "a.dcm",
            {
                "ImageLaterality": None,
                "ViewPosition": None,
                "PatientID": "Calc-Test_P_00038_LEFT_MLO",
            },
            "L-MLO",
            "PatientID",
            "PatientID",
        ),
        (
            "R_MLO.dcm",
            {"ImageLaterality": None, "ViewPosition": None},
            "R-MLO",
            "file name",
            "file name",
        ),
        (
            "RIGHT/CC/1-1.dcm",
            {"ImageLaterality": None, "ViewPosition": None},
            "R-CC",
            "folder CC",
            "folder RIGHT",
        ),
    ],
)
def test_view_and_side_fallbacks(tmp_path, small, name, tags, view, view_from, side_from):
    path = make_dicom(tmp_path / name, small["L"], **tags)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    found = dicom.describe(header, path, name, "study")
    assert (found.view, found.view_from, found.side_from) == (view, view_from, side_from)


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        (
            {"ViewCodeSequence": _view_code("399162004", "cranio-caudal", "Spot Compression")},
            "not a screening view: Spot Compression",
        ),
        ({"SeriesDescription": "L CC MAG"}, "not a screening view: magnification"),
        ({"ViewPosition": "CCID"}, "not a screening view: implant displaced"),
        ({"SeriesDescription": "CAD marked L CC"}, "not a screening view: CAD-marked"),
        ({"SeriesDescription": "ROI mask images"}, "not a screening view: ROI mask"),
        ({"ViewPosition": "XCCL"}, "not a screening view: XCCL"),
        ({"ImageLaterality": "B"}, "ImageLaterality is B"),
        ({"ImageLaterality": None}, "no side found"),
        ({"ViewPosition": None}, "no view found"),
        ({"Modality": "CT"}, "modality CT is not mammography"),
        ({"NumberOfFrames": 5}, "multi-frame"),
        ({"Modality": "CR", "BodyPartExamined": "CHEST"}, "body part CHEST"),
        ({"StudyInstanceUID": None}, "no StudyInstanceUID to group it by"),
    ],
)
def test_non_screening_and_unplaceable_images_are_skipped(tmp_path, small, tags, reason):
    path = make_dicom(tmp_path / "x.dcm", small["L"], **tags)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    found = dicom.describe(header, path, "x.dcm", "study")
    assert found.status == "skipped"
    assert reason in found.reason


def test_presentation_image_wins_over_processing_and_spot_view_is_skipped(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small)
    raw = np.full_like(small["L"], 1234)
    make_dicom(
        src / "raw_LCC.dcm",
        raw,
        sop_class=DigitalMammographyXRayImageStorageForProcessing,
        PresentationIntentType="FOR PROCESSING",
    )
    make_dicom(
        src / "spot_LCC.dcm",
        small["L"],
        ViewCodeSequence=_view_code("399162004", "cranio-caudal", "Spot Compression"),
    )
    code, report = run(src, tmp_path / "dst")
    assert code == 0
    (exam_dir,) = exams_in(tmp_path / "dst")
    assert load_exam(exam_dir).images["L-CC"] == (f"{exam_dir.name}_L_CC",)
    np.testing.assert_array_equal(read_png(exam_dir / f"{exam_dir.name}_L_CC.png"), small["L"])
    by_file = rows(report)
    assert by_file["raw_LCC.dcm"]["status"] == "skipped"
    assert (
        "for-processing image; the for-presentation image 1001_LCC.dcm"
        in (by_file["raw_LCC.dcm"]["reason"])
    )
    assert "Spot Compression" in by_file["spot_LCC.dcm"]["reason"]


def test_several_images_of_a_view_get_numbered_names(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small)
    make_dicom(src / "zz_second_LCC.dcm", small["L"], InstanceNumber=2)
    assert run(src, tmp_path / "dst")[0] == 0
    (exam_dir,) = exams_in(tmp_path / "dst")
    assert load_exam(exam_dir).images["L-CC"] == (
        f"{exam_dir.name}_L_CC",
        f"{exam_dir.name}_L_CC_2",
    )


def test_compressed_files_are_decoded(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small, skip=("L-CC", "R-MLO"))
    make_dicom(src / "rle_LCC.dcm", small["L"], compress=RLELossless)
    syntax = RLELossless
    if _can_encode_jpeg2000():
        syntax = JPEG2000Lossless
    make_dicom(src / "j2k_RMLO.dcm", small["R"], side="R", view="MLO", compress=syntax)
    assert pydicom.dcmread(src / "rle_LCC.dcm").file_meta.TransferSyntaxUID == RLELossless
    assert run(src, tmp_path / "dst")[0] == 0
    (exam_dir,) = exams_in(tmp_path / "dst")
    np.testing.assert_array_equal(read_png(exam_dir / f"{exam_dir.name}_L_CC.png"), small["L"])
    np.testing.assert_array_equal(read_png(exam_dir / f"{exam_dir.name}_R_MLO.png"), small["R"])


def _can_encode_jpeg2000() -> bool:
    try:
        import openjpeg  # noqa: F401  (the `dicom` extra's JPEG 2000 plugin)
    except ImportError:
        return False
    return True


def test_mirrored_exam_gets_horizontal_flip_yes_and_pixels_as_stored(tmp_path, small):
    mirrored = {side: np.ascontiguousarray(image[:, ::-1]) for side, image in small.items()}
    write_dicom_exam(tmp_path / "src", mirrored)
    code, report = run(tmp_path / "src", tmp_path / "dst")
    assert code == 0
    (exam_dir,) = exams_in(tmp_path / "dst")
    assert load_exam(exam_dir).horizontal_flip == "YES"
    np.testing.assert_array_equal(read_png(exam_dir / f"{exam_dir.name}_R_MLO.png"), mirrored["R"])
    assert report["exams"][0]["notes"] == []


def test_odd_view_is_mirrored_to_match_the_exam(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small, skip=("R-MLO",))
    make_dicom(
        src / "odd_RMLO.dcm", np.ascontiguousarray(small["R"][:, ::-1]), side="R", view="MLO"
    )
    code, report = run(src, tmp_path / "dst")
    assert code == 0
    (exam_dir,) = exams_in(tmp_path / "dst")
    assert load_exam(exam_dir).horizontal_flip == "NO"
    np.testing.assert_array_equal(read_png(exam_dir / f"{exam_dir.name}_R_MLO.png"), small["R"])
    assert report["exams"][0]["notes"] == [
        f"{exam_dir.name}_R_MLO faced the other way from the exam's other views: mirrored"
    ]
    assert any("mirrored" in note for note in rows(report)["odd_RMLO.dcm"]["notes"])


def test_incomplete_exam_is_skipped_and_others_go_on(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small, study="1.2.3.1111")
    write_dicom_exam(src, small, study="1.2.3.2222", skip=("R-MLO",))
    code, report = run(src, tmp_path / "dst")
    assert code == 0
    assert len(exams_in(tmp_path / "dst")) == 1
    (skipped_exam,) = report["skipped_exams"]
    assert "lacks R-MLO" in skipped_exam["reason"]
    assert all(
        "lacks R-MLO" in rows(report)[f"2222_{v}.dcm"]["reason"] for v in ("LCC", "RCC", "LMLO")
    )
    assert report["summary"] == {
        "files": 7,
        "used": 4,
        "skipped": 3,
        "exams_written": 1,
        "exams_skipped": 1,
    }


def test_nothing_ingested_exits_non_zero_with_a_report(tmp_path, small):
    write_dicom_exam(tmp_path / "src", small, skip=("L-MLO",))
    code, report = run(tmp_path / "src", tmp_path / "dst")
    assert code == 1
    assert exams_in(tmp_path / "dst") == []
    assert report["summary"]["exams_written"] == 0


def _cbis_like(src: Path, small) -> None:
    """Like CBIS-DDSM: each image its own study, the view only in the patient id, one
    folder per image."""
    for view in VIEWS:
        side, angle = view.split("-")
        patient = f"Calc-Test_P_00038_{'LEFT' if side == 'L' else 'RIGHT'}_{angle}"
        make_dicom(
            src / patient / "1-1.dcm",
            small[side],
            side=None,
            view=None,
            study=generate_uid(),
            patient=patient,
            sop_class=SecondaryCaptureImageStorage,
        )


def test_group_by_patient_joins_per_view_studies(tmp_path, small):
    _cbis_like(tmp_path / "src", small)
    code, report = run(tmp_path / "src", tmp_path / "by_study")
    assert code == 1
    assert len(report["skipped_exams"]) == 4
    code, report = run(tmp_path / "src", tmp_path / "by_patient", "--group-by", "patient")
    assert code == 0
    (exam_dir,) = exams_in(tmp_path / "by_patient")
    assert {(r["view_from"], r["side_from"]) for r in report["files"]} == {
        ("PatientID", "PatientID")
    }
    assert "P_00038" not in (exam_dir / "exam.json").read_text()


def test_group_by_folder(tmp_path, small):
    for name, images in (("exam_a", small), ("exam_b", small)):
        for view in VIEWS:
            side, angle = view.split("-")
            make_dicom(
                tmp_path / "src" / name / f"{side}{angle}.dcm",
                images[side],
                side=side,
                view=angle,
                study=generate_uid(),
            )
    code, _ = run(tmp_path / "src", tmp_path / "dst", "--group-by", "folder", "--keep-ids")
    assert code == 0
    assert [p.name for p in exams_in(tmp_path / "dst")] == ["exam_a", "exam_b"]


def test_ids_are_stable_salted_and_optional(tmp_path, small, monkeypatch):
    write_dicom_exam(tmp_path / "src", small)
    monkeypatch.delenv("BCD_ID_SALT", raising=False)
    run(tmp_path / "src", tmp_path / "dst")
    first = [p.name for p in exams_in(tmp_path / "dst")]
    run(tmp_path / "src", tmp_path / "dst")
    assert [p.name for p in exams_in(tmp_path / "dst")] == first
    run(tmp_path / "src", tmp_path / "salted", "--salt", "site-secret")
    monkeypatch.setenv("BCD_ID_SALT", "site-secret")
    run(tmp_path / "src", tmp_path / "from_env")
    salted = [p.name for p in exams_in(tmp_path / "salted")]
    assert salted != first
    assert [p.name for p in exams_in(tmp_path / "from_env")] == salted
    assert not (tmp_path / "salted.salt").exists()
    run(tmp_path / "src", tmp_path / "kept", "--keep-ids")
    assert [p.name for p in exams_in(tmp_path / "kept")] == [STUDY]


def test_keep_ids_sanitises_keys(tmp_path, small):
    for view in VIEWS:
        side, angle = view.split("-")
        make_dicom(
            tmp_path / "src" / f"{side}{angle}.dcm",
            small[side],
            side=side,
            view=angle,
            patient="Smith^John/01",
            study=generate_uid(),
        )
    run(tmp_path / "src", tmp_path / "dst", "--group-by", "patient", "--keep-ids")
    assert [p.name for p in exams_in(tmp_path / "dst")] == ["Smith_John_01_20190102"]


def test_undecodable_image_leaves_no_half_exam(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small)
    broken = src / "1001_RMLO.dcm"
    broken.write_bytes(broken.read_bytes()[:-5000])  # pixel data cut short
    dst = tmp_path / "dst"
    (dst / ".bcd-staging-leftover").mkdir(parents=True)
    code, report = run(src, dst)
    assert code == 1
    assert list(dst.iterdir()) == []
    assert rows(report)["1001_RMLO.dcm"]["status"] == "skipped"
    assert "no readable image for R-MLO" in rows(report)["1001_LCC.dcm"]["reason"]


def test_files_that_are_not_mammograms_are_listed_as_skipped(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small)
    shutil.copy(get_testdata_file("CT_small.dcm"), src / "ct.dcm")
    shutil.copy(get_testdata_file("test-SR.dcm"), src / "report.dcm")
    (src / "notes.txt").write_text("not an image")
    shutil.copy(src / "1001_LCC.dcm", src / "copy_of_LCC.dcm")
    code, report = run(src, tmp_path / "dst")
    assert code == 0
    by_file = rows(report)
    assert "modality CT is not mammography" in by_file["ct.dcm"]["reason"]
    assert "no image in this file" in by_file["report.dcm"]["reason"]
    assert by_file["notes.txt"]["reason"] == "not a DICOM file"
    assert "duplicate of 1001_LCC.dcm" in by_file["copy_of_LCC.dcm"]["reason"]
    assert report["summary"]["files"] == 8


def test_command_line_prints_the_table_and_refuses_a_report_inside_dst(tmp_path, small):
    write_dicom_exam(tmp_path / "src", small, skip=("R-CC",))
    make_dicom(
        tmp_path / "src" / "spot.dcm",
        small["R"],
        side="R",
        view="CC",
        SeriesDescription="R CC spot",
    )
    command = [sys.executable, "-m", "bcd.cli", "ingest", str(tmp_path / "src")]
    result = subprocess.run(
        [*command, str(tmp_path / "dst")], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 1
    assert "spot compression (SeriesDescription)" in result.stdout
    assert "0 exam(s) written" in result.stdout and "lacks R-CC" in result.stdout
    assert "nothing could be ingested" in result.stderr
    inside = subprocess.run(
        [*command, str(tmp_path / "dst"), "--report", str(tmp_path / "dst" / "r.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert inside.returncode == 2
    assert "must not be inside DST" in inside.stderr


def test_a_view_with_only_a_for_processing_image_keeps_it_with_a_note(tmp_path, small):
    src = tmp_path / "src"
    write_dicom_exam(src, small, skip=("L-MLO",))
    make_dicom(
        src / "raw_LMLO.dcm",
        small["L"],
        view="MLO",
        sop_class=DigitalMammographyXRayImageStorageForProcessing,
    )
    code, report = run(src, tmp_path / "dst")
    assert code == 0
    assert rows(report)["raw_LMLO.dcm"]["notes"] == [
        "for-processing image: this view has no for-presentation image"
    ]
