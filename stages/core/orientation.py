"""Which way each breast faces: the reference's crop modes and mirroring rules."""

from __future__ import annotations

import numpy as np

from stages.core.exam import view_side


def crop_mode(view: str, horizontal_flip: str) -> str:
    """'right' when the breast points right in the raw image (chest wall on the left
    edge), else 'left'.

    Raw images show left breasts facing right and right breasts facing left;
    horizontal_flip "YES" mirrors the whole exam.
    """
    left_side = view_side(view) == "L"
    return "right" if left_side == (horizontal_flip == "NO") else "left"


def needs_mirror(view: str, horizontal_flip: str) -> bool:
    """True when the image is mirrored so that, like every other view, it faces right."""
    return crop_mode(view, horizontal_flip) == "left"


def to_facing_right(image: np.ndarray, view: str, horizontal_flip: str) -> np.ndarray:
    """The image as the models see it: mirrored left-right where the view needs it."""
    return np.fliplr(image) if needs_mirror(view, horizontal_flip) else image
