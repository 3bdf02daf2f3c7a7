"""Crop and centre parity with the NYU reference, on real and synthetic images.

The expected values in tests/data/reference/ were made by running the reference itself
(see its README there); the inputs are rebuilt here from ../shared, sample_data/ or the
seeded generator.
"""

import hashlib
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REFERENCE, case_input_image, load_case, python_module_cmd, write_case_exam

from stages.core.centers import cc_center, mlo_center
from stages.core.cropping import crop_image, crop_info
from stages.core.exam import INPUT_SIZE, view_angle
from stages.core.orientation import crop_mode, to_facing_right

CASES = sorted(path.stem for path in REFERENCE.glob("*.json"))


def array_sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.mark.parametrize("case", CASES)
def test_crop_and_centre_match_the_reference(case):
    expected = load_case(case)
    flip = expected["horizontal_flip"]
    for record in expected["images"]:
        view = record["view"]
        image = case_input_image(record["source"])
        assert list(image.shape) == record["input_shape"]
        crop = crop_info(image, crop_mode(view, flip))
        info = crop.as_json()
        for key in ("window_location", "rightmost_points", "bottommost_points"):
            assert info[key] == record[key], (case, record["image"], key)
        assert info["distance_from_starting_side"] == record["distance_from_starting_side"]
        cropped = crop_image(image, crop)
        assert list(cropped.shape) == record["cropped_shape"]
        assert str(cropped.dtype) == record["cropped_dtype"]
        assert array_sha256(cropped) == record["cropped_sha256"], (case, record["image"])

        facing_right = to_facing_right(cropped, view, flip)
        window = INPUT_SIZE[view_angle(view)]
        rightmost_x = info["rightmost_points"][1]
        if view_angle(view) == "CC":
            center = cc_center(facing_right, window, rightmost_x)
        else:
            center = mlo_center(facing_right, window, rightmost_x, info["bottommost_points"][0])
        assert list(center) == record["best_center"], (case, record["image"])


@pytest.mark.parametrize("case", ["real-flip-yes", "demo-0002"])
def test_stages_write_the_reference_values(case, pfs: Path):
    expected = write_case_exam(case, pfs / "sample_data")

    crop = subprocess.run(python_module_cmd("stages.crop", "--pfs", str(pfs)), timeout=300)
    assert crop.returncode == 0
    centres_pfs = pfs.parent / "centres"
    centres_pfs.mkdir()
    (centres_pfs / "crop").symlink_to(pfs / "out")
    centres = subprocess.run(
        python_module_cmd("stages.extract_centers", "--pfs", str(centres_pfs)), timeout=300
    )
    assert centres.returncode == 0
    data = json.loads((centres_pfs / "out" / case / "data.json").read_text())
    for record in expected["images"]:
        view = record["view"]
        index = data[view].index(record["image"])
        for key in (
            "window_location",
            "rightmost_points",
            "bottommost_points",
            "distance_from_starting_side",
            "best_center",
        ):
            assert data[key][view][index] == record[key], (record["image"], key)
        png = pfs / "out" / case / "cropped_images" / f"{record['image']}.png"
        assert array_sha256(cv2.imread(str(png), cv2.IMREAD_UNCHANGED)) == record["cropped_sha256"]
