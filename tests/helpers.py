"""Test helpers: the repository's paths, the real sample images, synthetic and reference exams."""

from __future__ import annotations

import functools
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import NoReturn

import cv2
import h5py
import numpy as np
import pytest

from stages.io.exam_files import EXAM_JSON, EXAMPLE_EXAM_LIST

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NYU_SAMPLE = SHARED / "data" / "nyu_sample"
TEST_DATA = REPO / "tests" / "data"
# Cases made by running the NYU reference itself (tests/data/reference/README.md).
REFERENCE = TEST_DATA / "reference"
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


# Set by .ci/run after it installs the tools (buildah, podman, runc, debootstrap, chromium):
# a test that lacks one of them fails there instead of skipping.
REQUIRE_IMAGE_TESTS = "BCD_REQUIRE_IMAGE_TESTS"


def skip_unless_required(reason: str) -> NoReturn:
    """Skip for a missing tool, or fail where BCD_REQUIRE_IMAGE_TESTS=1 says it must be there."""
    if os.environ.get(REQUIRE_IMAGE_TESTS) == "1":
        pytest.fail(f"{reason} ({REQUIRE_IMAGE_TESTS}=1: it must be installed)", pytrace=False)
    pytest.skip(reason)


def png_chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
    """One PNG chunk with its CRC; `length` overrides the length field (a corrupt one)."""
    size = len(data) if length is None else length
    return struct.pack(">I", size) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def python_module_cmd(module: str, *args: str) -> list[str]:
    """argv running `python -m module` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_stage_on(
    module: str, pfs: Path, *args: str, env: dict[str, str], timeout: float = 3600
) -> str:
    """`python -m module --pfs pfs args...` as a real process; fails the test on non-zero exit.
    Its stderr (the stage's log).

    The default timeout is only a guard: a full-size exam takes minutes on two busy cores.
    """
    done = subprocess.run(
        python_module_cmd(module, "--pfs", str(pfs), *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def breast_phantom(height: int, width: int, facing_right: bool, seed: int) -> np.ndarray:
    """A uint16 half-ellipse of tissue on the chest-wall edge plus a marker and a label.

    Facing right = the chest wall is on the left edge (a raw left breast, flip NO).
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    centre_y = height / 2 + rng.integers(-height // 10, height // 10)
    radius_y, radius_x = height * 0.38, width * 0.55
    inside = ((rows - centre_y) / radius_y) ** 2 + (cols / radius_x) ** 2 <= 1
    image = np.where(inside, 800 + rng.integers(0, 3000, size=inside.shape), 0).astype(np.uint16)
    image[5:15, width - 30 : width - 20] = 4000  # skin marker, far from the breast
    label = np.zeros((height, width), np.uint8)  # OpenCV draws text on 8-bit images only
    cv2.putText(label, "LCC", (width - 140, height - 20), 0, 1.0, 255, 2)
    image[label > 0] = 3000
    return image if facing_right else np.ascontiguousarray(np.fliplr(image))


def write_exam(
    root: Path,
    exam_id: str,
    flip: str = "NO",
    size: tuple[int, int] = (900, 700),
    seed: int = 0,
    layout: str = "exam.json",
) -> dict:
    """Write a synthetic four-view exam; return its exam dict.

    `layout` "exam.json": the project's exam format (`<exam>_L_CC.png`..., exam.json).
    "example": as Pachyderm's breast-cancer-detection example ships its sample_data
    (`L_CC.png`..., the exam dict pickled as a one-exam list in EXAMPLE_EXAM_LIST).
    """
    exam_dir = root / exam_id
    exam_dir.mkdir(parents=True)
    exam: dict = {"horizontal_flip": flip}
    for index, view in enumerate(VIEWS):
        side = view[0]
        name = view.replace("-", "_")
        if layout == "exam.json":
            name = f"{exam_id}_{name}"
        # Raw orientation: left breasts face right; flip YES mirrors the whole exam.
        facing_right = (side == "L") == (flip == "NO")
        image = breast_phantom(*size, facing_right=facing_right, seed=seed + index)
        cv2.imwrite(str(exam_dir / f"{name}.png"), image)
        exam[view] = [name]
    if layout == "exam.json":
        (exam_dir / EXAM_JSON).write_text(json.dumps(exam))
    else:
        (exam_dir / EXAMPLE_EXAM_LIST).write_bytes(pickle.dumps([exam]))
    return exam


def load_sample_data_generator():
    """scripts/make_sample_data.py as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_sample_data", REPO / "scripts" / "make_sample_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_case(name: str) -> dict:
    """One reference case's expected values."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


def case_input_image(source: dict) -> np.ndarray:
    """A reference case's input image, rebuilt from where the case says it came from."""
    if source["kind"] == "generator":
        return getattr(load_sample_data_generator(), source["function"])(**source["args"])
    if source["kind"] == "repo_png":
        return cv2.imread(str(REPO / source["path"]), cv2.IMREAD_UNCHANGED)
    image = cv2.imread(str(SHARED / source["path"]), cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(np.fliplr(image)) if source["mirrored"] else image


def write_case_exam(case: str, sample_data: Path) -> dict:
    """The case's input images and exam.json in `sample_data/<case>/`; returns the case."""
    expected = load_case(case)
    exam_dir = sample_data / case
    exam_dir.mkdir(parents=True)
    exam = {"horizontal_flip": expected["horizontal_flip"]}
    for record in expected["images"]:
        cv2.imwrite(str(exam_dir / f"{record['image']}.png"), case_input_image(record["source"]))
        exam.setdefault(record["view"], []).append(record["image"])
    (exam_dir / "exam.json").write_text(json.dumps(exam))
    return expected


# ---- the inputs of visualize: crops, heatmaps and predictions of one exam

UNVERIFIED_WARNING = "UNVERIFIED WEIGHTS — not the published model; predictions are not clinical"
PREDICTIONS = {
    "image": {
        "left_benign": 0.0580,
        "right_benign": 0.0754,
        "left_malignant": 0.0091,
        "right_malignant": 0.0179,
    },
    "imageheatmaps": {
        "left_benign": 0.0612,
        "right_benign": 0.0555,
        "left_malignant": 0.0099,
        "right_malignant": 0.0063,
    },
}


@functools.cache
def read_sample(side: str) -> np.ndarray:
    image = cv2.imread(str(NYU_SAMPLE / f"1_{side}_CC.png"), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint16
    return image


def sample_mammogram(side: str, scale: float) -> np.ndarray:
    """The real NYU sample CC image of one side, cut roughly to the breast like the crop
    stage would, and shrunk to keep tests fast (still uint16)."""
    image = read_sample(side)
    height, width = image.shape
    columns = slice(0, round(0.56 * width)) if side == "L" else slice(round(0.44 * width), width)
    image = image[round(0.05 * height) : round(0.95 * height), columns]
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def blob(shape: tuple[int, int], centre: tuple[float, float], peak: float) -> np.ndarray:
    """A Gaussian bump of height `peak` at `centre` (fractions of height and width)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    cy, cx, sigma = centre[0] * shape[0], centre[1] * shape[1], 0.08 * min(shape)
    return (peak * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2))).astype(
        np.float32
    )


def write_transposed_heatmap(path: Path, heatmap: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("image", data=heatmap.T)  # stored transposed, as upstream does


def write_report_inputs(
    pfs: Path,
    exam_id: str,
    *,
    flip: str = "NO",
    scale: float = 0.2,
    models: tuple[str, ...] = ("image", "imageheatmaps"),
    verified: bool = False,
    image_prefix: str | None = None,
) -> dict[str, np.ndarray]:
    """Crop, heatmap and classify outputs of one exam; returns the raw images by name.

    Left views show the real left CC image, right views the right one (as a stand-in for
    MLO too). With flip "YES" every raw image and heatmap is mirrored, as in a flipped exam.
    Malignant blobs sit near the chest wall, benign ones near the nipple.
    """
    crop_dir = pfs / "crop" / exam_id
    images: dict[str, np.ndarray] = {}
    exam_dict: dict[str, object] = {"horizontal_flip": flip}
    for view in VIEWS:
        side = view[0]
        name = f"{image_prefix or exam_id}_{view.replace('-', '_')}"
        image = sample_mammogram(side, scale)
        chest_wall_x = 0.25 if side == "L" else 0.75
        malignant = blob(image.shape, (0.4, chest_wall_x), 0.9)
        benign = blob(image.shape, (0.65, 0.6 if side == "L" else 0.4), 0.6)
        if flip == "YES":
            image, malignant, benign = (np.fliplr(a) for a in (image, malignant, benign))
        (crop_dir / "cropped_images").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(crop_dir / "cropped_images" / f"{name}.png"), image)
        heatmaps = pfs / "generate_heatmaps" / exam_id / "heatmaps"
        write_transposed_heatmap(heatmaps / "heatmap_malignant" / f"{name}.hdf5", malignant)
        write_transposed_heatmap(heatmaps / "heatmap_benign" / f"{name}.hdf5", benign)
        exam_dict[view] = [name]
        images[name] = image
    exam_dict["window_location"] = {view: [[0, 10, 0, 10]] for view in VIEWS}
    (crop_dir / "cropped_exam_list.json").write_text(json.dumps(exam_dict))
    provenance: dict[str, object] = {
        "verified": verified,
        "models": {m: {"file": f"models/sample_{m}_model.p", "sha256": "ab" * 32} for m in models},
        "epochs": 10,
        "augmentation": True,
        "device": "cpu",
        "project_version": "0.1.0",
        "precision": "fp32",
    }
    if not verified:
        provenance["warning"] = UNVERIFIED_WARNING
    classify_dir = pfs / "classify" / exam_id
    classify_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "exam": exam_id,
        "models": {m: PREDICTIONS[m] for m in models},
        "provenance": provenance,
    }
    (classify_dir / "predictions.json").write_text(json.dumps(record))
    for m in models:
        values = ",".join(str(PREDICTIONS[m][label]) for label in PREDICTIONS[m])
        (classify_dir / f"{m}_predictions.csv").write_text(
            "left_benign,right_benign,left_malignant,right_malignant\n" + values + "\n"
        )
    return images


# The study and patient of the DICOM files the ingest tests write.
DICOM_STUDY = "1.2.826.0.1.3680043.8.498.1001"
DICOM_PATIENT = "PAT-0042"


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    side: str | None = "L",
    view: str | None = "CC",
    bits: int = 16,
    photometric: str = "MONOCHROME2",
    study: str = DICOM_STUDY,
    patient: str = DICOM_PATIENT,
    sop_class: str | None = None,
    compress: str | None = None,
    **tags,
) -> Path:
    """A DICOM file with the pixels and header of a mammogram; tags set to None are left out.

    `sop_class` defaults to digital mammography for presentation.
    """
    from pydicom.dataset import Dataset, FileMetaDataset  # the dicom extra: imported here
    from pydicom.uid import (
        DigitalMammographyXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    sop_class = sop_class or DigitalMammographyXRayImageStorageForPresentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = patient
    ds.StudyDate = "20190102"
    ds.Modality = "MG"
    if side:
        ds.ImageLaterality = side
    if view:
        ds.ViewPosition = view
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    for keyword, value in tags.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.PixelData = pixels.astype("<u2").tobytes()
    if compress:
        ds.compress(compress, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom_exam(
    src: Path,
    images: dict[str, np.ndarray],
    *,
    study: str = DICOM_STUDY,
    skip: tuple[str, ...] = (),
) -> None:
    """Four views (less `skip`) of one study, with the L image for L views."""
    for view in VIEWS:
        if view in skip:
            continue
        side, angle = view.split("-")
        make_dicom(
            src / f"{study[-4:]}_{side}{angle}.dcm",
            images[side],
            side=side,
            view=angle,
            study=study,
        )
