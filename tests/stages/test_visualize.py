"""The visualize stage and its library, on real 16-bit PNGs and real HDF5 heatmaps."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from helpers import (
    PREDICTIONS,
    REPO,
    UNVERIFIED_WARNING,
    VIEWS,
    write_report_inputs,
    write_transposed_heatmap,
)

from stages import visualize
from stages.report.figure import display_orientation, view_figure
from stages.report.html import flatten_provenance
from stages.report.overlays import apply_window, colour_bar, display_window, tint


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def embedded_pngs(html: str) -> list[np.ndarray]:
    return [
        cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)
        for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    ]


# --- overlay maths -------------------------------------------------------------------


def test_window_maps_breast_percentiles_to_black_and_white():
    image = np.zeros((10, 100), np.uint16)
    image[:, 50:] = np.arange(1000, 51000, 1000, dtype=np.uint16)  # breast: 1000..50000
    low, high = display_window(image, 0.0, 100.0)
    assert (low, high) == (1000.0, 50000.0)  # background zeros ignored
    grey = apply_window(image, low, high)
    assert grey.dtype == np.uint8
    assert grey[0, 50] == 0 and grey[0, 99] == 255 and grey[0, 0] == 0
    assert grey[0, 74] == 125  # 25000: (25000 - 1000) / 49000 * 255 = 124.9


def test_tint_blends_colour_with_opacity_proportional_to_probability():
    grey = np.full((1, 3), 100, np.uint8)
    probability = np.array([[0.0, 0.5, 1.0]], np.float32)
    red = tint(grey, probability, (255, 0, 0), full_alpha=0.8)
    # alpha 0, 0.4, 0.8: 100 * (1 - a) + 255 * a for red, 100 * (1 - a) otherwise.
    assert red[0, 0].tolist() == [100, 100, 100]
    assert red[0, 1].tolist() == [162, 60, 60]
    assert red[0, 2].tolist() == [224, 20, 20]


def test_colour_bar_runs_from_grey_to_full_tint():
    bar = colour_bar(length=11, thickness=3, colour=(0, 255, 0), full_alpha=0.8)
    assert bar.shape == (3, 11, 3)
    assert bar[1, 0].tolist() == [128, 128, 128]
    assert bar[1, 10].tolist() == [26, 230, 26]  # 128 * 0.2 = 25.6, 128 * 0.2 + 255 * 0.8
    assert (np.diff(bar[0, :, 1].astype(int)) > 0).all()


def test_display_orientation_hangs_right_breasts_facing_left():
    array = np.arange(6).reshape(2, 3)
    assert (display_orientation(array, "R-CC", "NO") == array).all()
    assert (display_orientation(array, "L-MLO", "NO") == array).all()
    assert (display_orientation(array, "R-MLO", "YES") == array[:, ::-1]).all()
    assert (display_orientation(array, "L-CC", "YES") == array[:, ::-1]).all()


def test_provenance_is_flattened_without_the_flag_and_warning():
    pairs = flatten_provenance(
        {"verified": False, "warning": "x", "models": {"image": {"file": "a.p"}}, "epochs": 10}
    )
    assert pairs == [("models.image.file", "a.p"), ("epochs", "10")]


def expected_window(image: np.ndarray) -> np.ndarray:
    """0.5-99.5th percentile of the non-zero pixels to black-white, computed here by hand."""
    low, high = np.percentile(image[image > 0], [0.5, 99.5])
    return np.rint(np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def find(template: np.ndarray, haystack: np.ndarray, mask: np.ndarray | None = None):
    """(row, col) where `template` best fits in `haystack`, and the largest pixel
    difference there (over `mask` where given)."""
    scores = cv2.matchTemplate(
        haystack.astype(np.float32), template.astype(np.float32), cv2.TM_SQDIFF, mask=mask
    )
    _, _, (col, row), _ = cv2.minMaxLoc(scores)
    height, width = template.shape
    difference = np.abs(haystack[row : row + height, col : col + width] - template.astype(float))
    if mask is not None:
        difference = difference[mask > 0]
    return row, col, float(difference.max())


# --- one view's figure ------------------------------------------------------------------


def test_figure_shows_image_then_red_malignant_then_green_benign_panels():
    rng = np.random.default_rng(0)
    image = rng.integers(1000, 40000, size=(200, 120)).astype(np.uint16)
    image[:30, 90:] = 0  # background
    malignant = np.zeros(image.shape, np.float32)
    malignant[20:60, 10:40] = 1.0
    benign = np.zeros(image.shape, np.float32)
    benign[120:160, 60:100] = 0.5
    figure = view_figure(
        image, malignant, benign, view="L-CC", image_name="x", horizontal_flip="NO"
    )
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[2] == 3
    grey = expected_window(image).astype(np.float32)

    top, left, error = find(grey, figure[..., 0])
    assert error <= 1.0  # panel 1: the windowed image itself, grey
    body = figure[top : top + 200, left : left + 120]
    assert (body[..., 0] == body[..., 1]).all() and (body[..., 1] == body[..., 2]).all()

    untinted = (malignant == 0).astype(np.float32)
    right_of_first = figure[:, left + 120 :, 1]
    m_top, m_left, error = find(grey, right_of_first, mask=untinted)
    assert m_top == top and error <= 1.0
    red = figure[top : top + 200, left + 120 + m_left :][:, :120].astype(int)
    # Tinted with alpha 0.8 where p = 1 (by hand: grey * 0.2 + 255 * 0.8), untouched elsewhere.
    block = grey[20:60, 10:40]
    assert np.abs(red[20:60, 10:40, 0] - (block * 0.2 + 204)).max() <= 1
    assert np.abs(red[20:60, 10:40, 1] - block * 0.2).max() <= 1
    assert (red[malignant == 0] == grey[malignant == 0][:, None]).all()

    after_red = left + 120 + m_left + 120
    untinted = (benign == 0).astype(np.float32)
    b_top, b_left, error = find(grey, figure[:, after_red:, 0], mask=untinted)
    assert b_top == top and error <= 1.0
    green = figure[top : top + 200, after_red + b_left :][:, :120].astype(int)
    block = grey[120:160, 60:100]  # p = 0.5: alpha 0.4
    assert np.abs(green[120:160, 60:100, 1] - (block * 0.6 + 102)).max() <= 1
    assert np.abs(green[120:160, 60:100, 0] - block * 0.6).max() <= 1


def test_figure_hangs_a_flip_yes_left_view_mirrored():
    rng = np.random.default_rng(1)
    image = rng.integers(1, 60000, size=(90, 50)).astype(np.uint16)
    flat = np.zeros(image.shape, np.float32)
    figure = view_figure(image, flat, flat, view="L-CC", image_name="x", horizontal_flip="YES")
    mirrored = expected_window(image)[:, ::-1]
    assert find(mirrored, figure[..., 1])[2] <= 1.0
    assert find(expected_window(image), figure[..., 1])[2] > 100.0


# --- the stage ------------------------------------------------------------------------


def run_stage(pfs: Path, *extra: str) -> int:
    return visualize.main(["--pfs", str(pfs), *extra])


def test_stage_writes_overlays_and_a_self_contained_report(tmp_path):
    images = write_report_inputs(tmp_path, "0")
    assert run_stage(tmp_path) == 0
    out = tmp_path / "out" / "0"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{name}_overlay.png" for name in images] + ["report.html"]
    )
    for name, image in images.items():
        overlay = cv2.imread(str(out / f"{name}_overlay.png"), cv2.IMREAD_UNCHANGED)
        assert overlay.dtype == np.uint8 and overlay.shape[2] == 3
        assert overlay.shape[0] > image.shape[0] and overlay.shape[1] > 3 * image.shape[1]
        # flip "NO": raw orientation is already the radiological one.
        assert find(expected_window(image), overlay[..., 0])[2] <= 1.0

    html = (out / "report.html").read_text(encoding="utf-8")
    assert UNVERIFIED_WARNING in html and 'class="banner"' in html
    for model in PREDICTIONS.values():
        for value in model.values():
            assert f">{value:.4f}<" in html
    assert "models/sample_imageheatmaps_model.p" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing fetched from outside
    embedded = embedded_pngs(html)
    assert len(embedded) == 4
    assert all(png is not None and png.ndim == 3 and png.shape[0] <= 900 for png in embedded)
    # Radiological layout, row by row: R-CC, L-CC, then R-MLO, L-MLO.
    captions = re.findall(r"<figcaption>([RL]-(?:CC|MLO))<", html)
    assert captions == ["R-CC", "L-CC", "R-MLO", "L-MLO"]
    links = re.findall(r'<a href="([^"]+)"><img', html)
    assert links == ["0_R_CC_overlay.png", "0_L_CC_overlay.png", "0_R_MLO_overlay.png",
                     "0_L_MLO_overlay.png"]  # fmt: skip


def test_verified_weights_get_no_banner(tmp_path):
    write_report_inputs(tmp_path, "0", verified=True)
    assert run_stage(tmp_path) == 0
    html = (tmp_path / "out" / "0" / "report.html").read_text(encoding="utf-8")
    assert "UNVERIFIED_WARNING" not in html and 'class="banner"' not in html


def test_a_model_that_was_not_run_is_shown_as_such(tmp_path):
    write_report_inputs(tmp_path, "0", models=("image",))
    assert run_stage(tmp_path) == 0
    html = (tmp_path / "out" / "0" / "report.html").read_text(encoding="utf-8")
    assert html.count("not run") == 4
    assert ">0.0754<" in html and ">0.0555<" not in html


def test_a_flipped_exam_hangs_like_its_unflipped_twin(tmp_path):
    write_report_inputs(tmp_path, "plain", flip="NO", image_prefix="x")
    write_report_inputs(tmp_path, "flipped", flip="YES", image_prefix="x")
    assert run_stage(tmp_path) == 0
    for view in VIEWS:
        name = f"x_{view.replace('-', '_')}_overlay.png"
        plain = cv2.imread(str(tmp_path / "out" / "plain" / name))
        flipped = cv2.imread(str(tmp_path / "out" / "flipped" / name))
        assert (plain == flipped).all(), view


def break_shape(path: Path) -> None:
    write_transposed_heatmap(path, np.zeros((7, 5), np.float32))


def break_values(path: Path) -> None:
    with h5py.File(path, "r") as handle:
        heatmap = np.asarray(handle["image"]).T
    heatmap[3, 3] = np.nan
    write_transposed_heatmap(path, heatmap)


def break_dataset(path: Path) -> None:
    path.unlink()
    with h5py.File(path, "w") as handle:
        handle.create_dataset("heatmap", data=np.zeros((3, 3), np.float32))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (break_shape, "7x5"),
        (break_values, "finite probabilities"),
        (break_dataset, "unreadable"),
        (Path.unlink, "missing"),
        (lambda path: path.write_bytes(b"not HDF5"), "unreadable"),
    ],
)
def test_a_bad_heatmap_fails_its_exam_only(tmp_path, damage, words):
    write_report_inputs(tmp_path, "good", scale=0.1)
    write_report_inputs(tmp_path, "bad", scale=0.1)
    relative = "heatmaps/heatmap_malignant/bad_R_MLO.hdf5"
    damage(tmp_path / "generate_heatmaps" / "bad" / relative)
    assert run_stage(tmp_path) == 0
    record = json.loads((tmp_path / "out" / "bad" / "error.json").read_text())
    assert record["exam"] == "bad" and record["stage"] == "visualize"
    assert record["file"] == relative and words in record["reason"]
    assert sorted(p.name for p in (tmp_path / "out" / "bad").iterdir()) == ["error.json"]
    assert (tmp_path / "out" / "good" / "report.html").is_file()
    assert run_stage(tmp_path, "--strict") == 1


def test_bad_predictions_fail_the_exam(tmp_path):
    write_report_inputs(tmp_path, "0")
    path = tmp_path / "classify" / "0" / "predictions.json"
    record = json.loads(path.read_text())
    record["models"]["image"]["left_malignant"] = 1.5
    path.write_text(json.dumps(record))
    assert run_stage(tmp_path) == 0
    error = json.loads((tmp_path / "out" / "0" / "error.json").read_text())
    assert error["file"] == "predictions.json" and "left_malignant" in error["reason"]


def test_an_upstream_error_is_passed_through(tmp_path):
    write_report_inputs(tmp_path, "ok")
    upstream = {"exam": "gone", "stage": "crop", "file": "0_L_CC.png", "reason": "empty image"}
    for name in ("crop", "generate_heatmaps", "classify"):
        (tmp_path / name / "gone").mkdir(parents=True)
        (tmp_path / name / "gone" / "error.json").write_text(json.dumps(upstream))
    assert run_stage(tmp_path) == 0
    assert json.loads((tmp_path / "out" / "gone" / "error.json").read_text()) == upstream
    assert (tmp_path / "out" / "ok" / "report.html").is_file()


def test_runs_as_a_module_without_torch(tmp_path):
    write_report_inputs(tmp_path, "0", scale=0.1)
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['visualize', '--pfs', {str(tmp_path)!r}]\n"
        "try:\n"
        "    runpy.run_module('stages.visualize', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "import stages.summary\n"
        "assert 'torch' not in sys.modules, 'the report stages must not import torch'\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "out" / "0" / "report.html").is_file()
