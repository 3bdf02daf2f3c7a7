"""The phantom generator (scripts/make_sample_data.py) and the committed sample_data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO, load_sample_data_generator
from scipy import ndimage

from stages.core.exam import VIEWS, exam_from_dict

SAMPLE_DATA = REPO / "sample_data"
SMALL = {"height": 900, "width": 700}


gen = load_sample_data_generator()


def _read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _breast(image: np.ndarray) -> np.ndarray:
    """The largest 4-connected non-zero component: the breast, without the markers."""
    labels, count = ndimage.label(image > 0)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return labels == 1 + int(np.argmax(sizes))


def test_same_seed_gives_same_pixels_and_other_seeds_differ():
    first = gen.make_phantom("L-MLO", [5, 1], **SMALL)
    again = gen.make_phantom("L-MLO", [5, 1], **SMALL)
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, gen.make_phantom("L-MLO", [5, 2], **SMALL))
    assert not np.array_equal(first, gen.make_phantom("R-MLO", [5, 1], **SMALL))


@pytest.mark.parametrize("view", VIEWS)
def test_phantom_shape_dtype_and_value_range(view):
    image = gen.make_phantom(view, 3, height=640, width=480)
    assert image.shape == (640, 480)
    assert image.dtype == np.uint16
    assert image.max() <= 4095
    breast = _breast(image)
    assert breast.mean() > 0.15
    assert image[breast].min() > 0  # the crop's mask is pixel > 0: no holes in the breast


@pytest.mark.parametrize("mirrored", [False, True])
@pytest.mark.parametrize("view", VIEWS)
def test_breast_touches_the_chest_wall_edge_for_its_side_and_flip(view, mirrored):
    image = gen.make_phantom(view, 7, mirrored=mirrored, **SMALL)
    breast = _breast(image)
    # NYU raw orientation: left breasts face right (chest wall on the left edge);
    # an exam with horizontal_flip YES is mirrored.
    chest_wall_left = (view[0] == "L") != mirrored
    chest_wall, far_edge = (0, -1) if chest_wall_left else (-1, 0)
    assert breast[:, chest_wall].sum() > 0.5 * image.shape[0]
    assert not image[:, far_edge].any()
    breast_columns = np.flatnonzero(breast.any(axis=0))
    assert breast_columns[0 if chest_wall_left else -1] == (0 if chest_wall_left else 699)


def _largest_step_inside_breast(image: np.ndarray, rows: range) -> int:
    """Largest jump between neighbouring pixels along the rows, away from the skin line."""
    breast = _breast(image)
    steps = []
    for row in rows:
        columns = np.flatnonzero(breast[row])
        inner = image[row, columns[0] : columns[-1] - 5].astype(np.int64)
        steps.append(int(np.abs(np.diff(inner)).max()))
    return max(steps)


def test_mlo_has_a_pectoral_wedge_and_reaches_the_top_edge_cc_is_smooth():
    mlo = gen.make_phantom("L-MLO", 4, markers=False, **SMALL)
    cc = gen.make_phantom("L-CC", 4, markers=False, **SMALL)
    assert mlo[0].any()
    # The muscle is a brighter wedge with a sharp edge; tissue texture is smooth.
    assert _largest_step_inside_breast(mlo, range(10, 60)) > 800
    assert _largest_step_inside_breast(cc, range(400, 500)) < 500


def test_markers_are_separate_components_away_from_the_breast():
    image = gen.make_phantom("R-CC", 9, **SMALL)
    breast = _breast(image)
    markers = (image > 0) & ~breast
    assert markers.any()
    assert np.all(image[markers] == 4095)
    marker_columns = np.flatnonzero(markers.any(axis=0))
    breast_columns = np.flatnonzero(breast.any(axis=0))
    assert marker_columns.max() < breast_columns.min() - 50  # R breast: chest wall on the right
    assert not gen.make_phantom("R-CC", 9, markers=False, **SMALL)[~breast].any()


def test_full_size_skin_marker_survives_the_crop_erosion_as_a_second_component():
    image = gen.make_phantom("L-CC", 2)
    # 100 erosions by the 3x3 cross = taxicab distance > 100 from the background
    # (the one-pixel pad makes the image border count as background).
    distance = ndimage.distance_transform_cdt(np.pad(image > 0, 1), metric="taxicab")[1:-1, 1:-1]
    _, count = ndimage.label(distance > 100)
    assert count == 2


def test_twin_phantom_is_two_equal_copies():
    twin = gen.make_twin_phantom("L-CC", [1, 1], 300, 400, gap=20, reach=0.4)
    assert twin.shape == (620, 400)
    assert np.array_equal(twin[:300], twin[320:])
    assert not twin[300:320].any()


def test_write_exam_writes_a_valid_exam_folder_reproducibly(tmp_path):
    shape = {"height": 500, "width": 400}
    first = gen.write_exam(tmp_path / "a", "ex-1", [2, 3], "YES", **shape)
    second = gen.write_exam(tmp_path / "b", "ex-1", [2, 3], "YES", **shape)
    exam_dict = json.loads((first / "exam.json").read_text())
    exam = exam_from_dict("ex-1", exam_dict)
    assert exam.horizontal_flip == "YES"
    assert exam.image_names() == [(view, f"ex-1_{view.replace('-', '_')}") for view in VIEWS]
    for view, name in exam.image_names():
        png = _read_png(first / f"{name}.png")
        assert png.dtype == np.uint16
        assert np.array_equal(png, gen.make_phantom(view, [2, 3], mirrored=True, **shape))
        assert (first / f"{name}.png").read_bytes() == (second / f"{name}.png").read_bytes()
    assert (first / "exam.json").read_bytes() == (second / "exam.json").read_bytes()


def test_exam_plan_names_and_flips():
    plan = gen.exam_plan(5, seed=3)
    assert [exam_id for exam_id, _, _ in plan] == [f"demo-000{n}" for n in range(1, 6)]
    assert [flip for _, _, flip in plan] == ["NO", "YES", "NO", "NO", "NO"]
    assert plan[0][1] == [3, 1]


@pytest.mark.parametrize("exam_id, seed, flip", gen.exam_plan(4, seed=0))
def test_committed_sample_data_is_what_the_generator_makes(exam_id, seed, flip):
    exam_dir = SAMPLE_DATA / exam_id
    exam = exam_from_dict(exam_id, json.loads((exam_dir / "exam.json").read_text()))
    assert exam.horizontal_flip == flip
    view, name = exam.image_names()[VIEWS.index("L-MLO") if flip == "YES" else 0]
    committed = _read_png(exam_dir / f"{name}.png")
    generated = gen.make_phantom(view, seed, mirrored=flip == "YES")
    assert committed.shape == (3328, 2560)
    assert committed.dtype == np.uint16
    # Leave out the label text band (top rows, far side): its glyphs depend on the OpenCV
    # version, and cropping discards it anyway. Everything else must match exactly.
    label_band = np.zeros(committed.shape, bool)
    chest_wall_left = (view[0] == "L") != (flip == "YES")
    far_side = slice(1700, None) if chest_wall_left else slice(0, 860)
    label_band[:340, far_side] = True
    assert np.array_equal(committed[~label_band], generated[~label_band])
    assert committed[label_band].any()  # the label is there, and nothing else
    assert np.all(committed[label_band & (committed > 0)] == 4095)
