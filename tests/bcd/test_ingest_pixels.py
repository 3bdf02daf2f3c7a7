"""Pixel rules of ingest: pypng's bit-depth scaling and which way a breast faces."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from helpers import REPO

from bcd.ingest.pixels import chest_wall_side, flip_of, invert, to_16_bits, to_levels

SAMPLE = REPO / ".." / "shared" / "data" / "nyu_sample"


@pytest.mark.parametrize("bits", [9, 10, 12, 14, 15])
def test_scaling_matches_pypng_for_every_value(bits):
    png = pytest.importorskip("png")
    values = np.arange(2**bits, dtype=np.uint16).reshape(1, -1)
    buffer = io.BytesIO()
    png.Writer(values.shape[1], 1, bitdepth=bits, greyscale=True).write(buffer, values.tolist())
    written = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(to_16_bits(values, bits), written)


def test_8_bit_values_are_multiplied_by_257():
    assert to_16_bits(np.array([0, 1, 128, 255]), 8).tolist() == [0, 257, 32896, 65535]


def test_16_bit_values_are_kept_and_out_of_range_values_clipped():
    values = np.array([0, 1, 12345, 65535])
    np.testing.assert_array_equal(to_16_bits(values, 16), values)
    assert to_16_bits(np.array([-3, 5000]), 12).tolist() == [0, 65535]


def test_invert_and_levels():
    assert invert(np.array([0, 1, 4095]), 12).tolist() == [4095, 4094, 0]
    # 40% and 60% of 255 are 102 and 153; values outside the bounds are clipped.
    levels = to_levels(np.array([-10.0, 0.0, 40.0, 60.0, 100.0, 200.0]), 0.0, 100.0, 8)
    assert levels.tolist() == [0, 0, 102, 153, 255, 255]


def test_chest_wall_side_of_the_sample_images():
    left = cv2.imread(str(SAMPLE / "1_L_CC.png"), cv2.IMREAD_UNCHANGED)
    right = cv2.imread(str(SAMPLE / "1_R_CC.png"), cv2.IMREAD_UNCHANGED)
    # Raw NYU orientation: left breasts against the left edge, right ones the right edge.
    assert chest_wall_side(left) == "left"
    assert chest_wall_side(right) == "right"
    assert chest_wall_side(left[:, ::-1]) == "right"
    assert flip_of("L", "left") == "NO" and flip_of("R", "right") == "NO"
    assert flip_of("L", "right") == "YES" and flip_of("R", "left") == "YES"


def test_undecidable_images():
    assert chest_wall_side(np.zeros((10, 10), np.uint16)) is None
    assert chest_wall_side(np.full((10, 10), 500, np.uint16)) is None
