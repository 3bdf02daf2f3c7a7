"""Reading side and view from tags and free text, in the documented fallback order."""

from __future__ import annotations

import pytest

from bcd.ingest.views import (
    Clue,
    place,
    read_laterality,
    read_text,
    read_view_position,
    without_view_words,
)


@pytest.mark.parametrize(
    ("text", "side", "angle", "other", "modifiers"),
    [
        ("L CC", "L", "CC", None, ()),
        ("RMLO", "R", "MLO", None, ()),
        ("R-MLO", "R", "MLO", None, ()),
        ("1_L_CC", "L", "CC", None, ()),
        ("Calc-Test_P_00038_LEFT_CC", "L", "CC", None, ()),
        ("Mass-Training_P_00001_RIGHT_MLO_1", "R", "MLO", None, ()),
        # A proper PatientOrientation: a lone letter is no side.
        ("P\\L", None, None, None, ()),
        ("LCC RCC", None, "CC", None, ()),
        ("R XCCL", "R", None, "XCCL", ()),
        ("spot R CC", "R", "CC", None, ("spot compression",)),
        ("L MLO MAG", "L", "MLO", None, ("magnification",)),
        ("LCCID", "L", "CC", None, ("implant displaced",)),
        ("R CC ID", "R", "CC", None, ("implant displaced",)),
        ("ROI mask images", None, None, None, ("ROI mask",)),
        ("full mammogram images", None, None, None, ()),
        ("", None, None, None, ()),
    ],
)
def test_read_text(text, side, angle, other, modifiers):
    clue = read_text("t", text)
    assert (clue.side, clue.angle, clue.other_view, clue.modifiers) == (
        side,
        angle,
        other,
        modifiers,
    )


def test_view_position_codes():
    assert read_view_position("MLO").angle == "MLO"
    assert read_view_position("AT").other_view == "AT"
    assert read_view_position(None) == Clue("ViewPosition")


def test_laterality():
    assert read_laterality("ImageLaterality", "R").side == "R"
    assert read_laterality("ImageLaterality", "U") == Clue("ImageLaterality")
    assert "both breasts" in read_laterality("ImageLaterality", "B").skip


def test_first_clue_wins_for_side_and_view_separately():
    placement = place(
        [
            Clue("ImageLaterality"),
            Clue("Laterality", side="R"),
            Clue("ViewPosition"),
            Clue("SeriesDescription", side="L", angle="MLO"),
        ]
    )
    assert (placement.view, placement.side_from, placement.view_from, placement.skip) == (
        "R-MLO",
        "Laterality",
        "SeriesDescription",
        None,
    )


def test_any_modifier_skips():
    placement = place([Clue("a", side="L", angle="CC"), Clue("b", modifiers=("magnification",))])
    assert placement.skip == "not a screening view: magnification (b)"


def test_without_view_words():
    assert without_view_words("Calc-Test_P_00038_LEFT_CC") == "Calc_Test_P_00038"
    assert without_view_words("P_0001_L_MLO") == "P_0001"
    assert without_view_words("R12345") == "R12345"
