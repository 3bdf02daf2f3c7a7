"""Which breast and which view an image shows, from tags and free text, in a fixed order.

Each source (a DICOM tag, the file name...) is read into a Clue; `place` takes the first
clue that names a side and the first that names a view, so the fallback order is simply
the order of the clues. Anything that marks a non-screening image (spot compression,
magnification, implant displaced, CAD marks, ROI masks, crops, other view angles) makes
the image skipped with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SCREENING_ANGLES = ("CC", "MLO")
# Standard mammography view codes (ViewPosition) that are not a screening CC or MLO.
OTHER_VIEW_CODES = frozenset({"XCCL", "XCCM", "ML", "LM", "LMO", "SIO", "ISO", "FB"})
# Words that mark a non-screening image, with the reason reported.
MODIFIER_WORDS = {
    "SPOT": "spot compression",
    "MAG": "magnification",
    "MAGNIFICATION": "magnification",
    "MAGNIFIED": "magnification",
    "DISPLACED": "implant displaced",
    "EKLUND": "implant displaced",
    "CAD": "CAD-marked",
    "ROI": "ROI mask",
    "MASK": "ROI mask",
    "CROP": "cropped image",
    "CROPPED": "cropped image",
}
SIDE_WORDS = {"LEFT": "L", "RIGHT": "R"}
# A view token, optionally with its side in front and "ID" (implant displaced) behind:
# "CC", "LCC", "RMLO", "LCCID", "XCCL", "RXCCL".
_VIEW_TOKEN = re.compile(
    r"(?P<side>[LR])?(?P<view>CC|MLO|" + "|".join(sorted(OTHER_VIEW_CODES)) + r")(?P<id>ID)?"
)


@dataclass(frozen=True)
class Clue:
    """What one source says about an image; None where it says nothing."""

    source: str
    side: str | None = None
    angle: str | None = None
    other_view: str | None = None
    modifiers: tuple[str, ...] = ()
    skip: str | None = None


@dataclass(frozen=True)
class Placement:
    """The image's side and angle with the sources that gave them, or why it is skipped."""

    side: str | None
    angle: str | None
    side_from: str | None
    view_from: str | None
    skip: str | None

    @property
    def view(self) -> str:
        return f"{self.side}-{self.angle}"


def read_text(source: str, text: str | None) -> Clue:
    """A clue from free text such as 'L CC', 'RMLO', 'Calc-Test_P_00038_LEFT_CC', 'spot R CC'.

    Single letters L/R count only next to a view token, so that e.g. a proper
    PatientOrientation 'P\\L' names no side. Text that names two sides or two views
    names none.
    """
    tokens = [t for t in re.split(r"[^A-Z0-9]+", (text or "").upper()) if t]
    sides: set[str] = set()
    angles: set[str] = set()
    others: set[str] = set()
    modifiers: list[str] = []
    view_at: list[int] = []
    for index, token in enumerate(tokens):
        match = _VIEW_TOKEN.fullmatch(token)
        if match:
            view_at.append(index)
            if match["side"]:
                sides.add(match["side"])
            view = match["view"]
            (angles if view in SCREENING_ANGLES else others).add(view)
            if match["id"]:
                modifiers.append("implant displaced")
        elif token in SIDE_WORDS:
            sides.add(SIDE_WORDS[token])
        elif token in MODIFIER_WORDS:
            modifiers.append(MODIFIER_WORDS[token])
    for index in view_at:
        for near in (index - 1, index + 1):
            if 0 <= near < len(tokens):
                if tokens[near] in ("L", "R"):
                    sides.add(tokens[near])
                elif tokens[near] == "ID":
                    modifiers.append("implant displaced")
    return Clue(
        source,
        side=_single(sides),
        angle=_single(angles) if not others else None,
        other_view=_single(others) if not angles else None,
        modifiers=tuple(dict.fromkeys(modifiers)),
    )


def read_laterality(source: str, value: str | None) -> Clue:
    """A clue from ImageLaterality / Laterality: L, R; B (both) is skipped, U says nothing."""
    code = (value or "").strip().upper()
    if code in ("L", "R"):
        return Clue(source, side=code)
    if code == "B":
        return Clue(source, skip=f"{source} is B (both breasts in one image)")
    return Clue(source)


def read_view_position(value: str | None) -> Clue:
    """A clue from ViewPosition: CC or MLO; any other view code is not a screening view."""
    clue = read_text("ViewPosition", value)
    code = (value or "").strip().upper()
    if code and clue.angle is None and clue.other_view is None:
        return Clue("ViewPosition", side=clue.side, other_view=code, modifiers=clue.modifiers)
    return clue


def place(clues: Sequence[Clue]) -> Placement:
    """Side from the first clue naming one, view from the first naming one, in clue order."""
    skip = next((clue.skip for clue in clues if clue.skip), None)
    modifier = next(
        (f"{clue.modifiers[0]} ({clue.source})" for clue in clues if clue.modifiers), None
    )
    side_clue = next((clue for clue in clues if clue.side), None)
    view_clue = next((clue for clue in clues if clue.angle or clue.other_view), None)
    side = side_clue.side if side_clue else None
    angle = view_clue.angle if view_clue else None
    if skip is None and modifier is not None:
        skip = f"not a screening view: {modifier}"
    if skip is None and view_clue is not None and view_clue.other_view:
        skip = (
            f"not a screening view: {view_clue.other_view} ({view_clue.source}); "
            "only CC and MLO are used"
        )
    if skip is None and side is None:
        skip = "no side found (no laterality tag, and no L/R in the descriptions or file name)"
    if skip is None and angle is None:
        skip = "no view found (no ViewPosition, view code, or CC/MLO in descriptions or file name)"
    return Placement(
        side,
        angle,
        side_clue.source if side_clue else None,
        view_clue.source if view_clue else None,
        skip,
    )


def _single(values: set[str]) -> str | None:
    return next(iter(values)) if len(values) == 1 else None


def without_view_words(text: str) -> str:
    """`text` without the words that name a side or a view, e.g. for a patient id that
    carries them ('Calc-Test_P_00038_LEFT_CC' -> 'Calc_Test_P_00038')."""
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", text or "") if t]
    upper = [t.upper() for t in tokens]
    view_at = {i for i, t in enumerate(upper) if _VIEW_TOKEN.fullmatch(t)}
    drop = view_at | {i for i, t in enumerate(upper) if t in SIDE_WORDS}
    drop |= {
        i
        for i, t in enumerate(upper)
        if t in ("L", "R", "ID") and (i - 1 in view_at or i + 1 in view_at)
    }
    return "_".join(t for i, t in enumerate(tokens) if i not in drop)
