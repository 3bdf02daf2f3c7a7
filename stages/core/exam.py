"""The exam: four views, image names per view, horizontal flip. Facts about views live here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from stages.core.errors import DataError, shown

VIEWS: tuple[str, ...] = ("L-CC", "R-CC", "L-MLO", "R-MLO")
ANGLES: tuple[str, ...] = ("CC", "MLO")
# Model input window per view angle, (height, width).
INPUT_SIZE: dict[str, tuple[int, int]] = {"CC": (2677, 1942), "MLO": (2974, 1748)}
FLIP_VALUES: tuple[str, ...] = ("NO", "YES")
# Keys the crop and centre stages add to the exam dict, each keyed by view.
METADATA_KEYS: tuple[str, ...] = (
    "window_location",
    "rightmost_points",
    "bottommost_points",
    "distance_from_starting_side",
    "best_center",
)
LABELS: tuple[str, ...] = ("left_benign", "right_benign", "left_malignant", "right_malignant")

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
# Under the file systems' 255-byte names, with room for the suffixes the stages add.
MAX_NAME_LENGTH = 200


def view_angle(view: str) -> str:
    """'CC' or 'MLO' for a view name such as 'L-CC'."""
    return view.split("-", 1)[1]


def view_side(view: str) -> str:
    """'L' or 'R' for a view name such as 'L-CC'."""
    return view.split("-", 1)[0]


def check_name(name: Any, what: str, *, exam: str | None = None, file: str | None = None) -> str:
    """Return `name` if it is a safe file-name component, else raise DataError.

    Safe: letters, digits, '.', '_' and '-' only, and not made of dots alone, so that
    no id can climb out of its directory or hide as a dot-file; at most MAX_NAME_LENGTH
    characters, so that every file named after it can be created.
    """
    if (
        not isinstance(name, str)
        or len(name) > MAX_NAME_LENGTH
        or not _SAFE_NAME.fullmatch(name)
        or set(name) == {"."}
    ):
        raise DataError(
            f"invalid {what} {shown(name)}: use only letters, digits, '.', '_' and '-' "
            f"(no path separators, no '..'), at most {MAX_NAME_LENGTH} characters",
            exam=exam,
            file=file,
        )
    return name


@dataclass(frozen=True)
class Exam:
    """One screening exam: image names per view, in the NYU exam-dict convention."""

    exam_id: str
    horizontal_flip: str
    images: dict[str, tuple[str, ...]]
    # Per-view metadata added by crop / extract_centers, lists aligned with `images`.
    metadata: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def image_names(self) -> list[tuple[str, str]]:
        """(view, image name) for every image, in view order."""
        return [(view, name) for view in VIEWS for name in self.images[view]]

    def to_dict(self) -> dict[str, Any]:
        """The NYU exam dict (JSON-ready), metadata included."""
        exam: dict[str, Any] = {"horizontal_flip": self.horizontal_flip}
        for view in VIEWS:
            exam[view] = list(self.images[view])
        for key, per_view in self.metadata.items():
            exam[key] = {view: per_view[view] for view in VIEWS}
        return exam

    def with_metadata(self, key: str, per_view: dict[str, list[Any]]) -> Exam:
        """A copy with one more metadata key (a list per view aligned with the images)."""
        for view in VIEWS:
            if len(per_view[view]) != len(self.images[view]):
                raise ValueError(f"{key}[{view}] does not align with the view's images")
        return Exam(
            self.exam_id, self.horizontal_flip, self.images, {**self.metadata, key: per_view}
        )


def exam_from_dict(exam_id: str, exam_dict: Any, *, file: str = "exam.json") -> Exam:
    """Validate an exam dict (as read from JSON) and build an Exam; DataError if malformed."""
    check_name(exam_id, "exam id", exam=exam_id if isinstance(exam_id, str) else None)

    def fail(reason: str) -> DataError:
        return DataError(reason, exam=exam_id, file=file)

    if not isinstance(exam_dict, dict):
        raise fail(f"must hold a JSON object (the exam dict), not {type(exam_dict).__name__}")
    flip = exam_dict.get("horizontal_flip", None)
    if flip not in FLIP_VALUES:
        raise fail(f'"horizontal_flip" must be "NO" or "YES", not {shown(flip)}')
    images: dict[str, tuple[str, ...]] = {}
    for view in VIEWS:
        names = exam_dict.get(view)
        if names is None:
            raise fail(f'missing view "{view}": every exam needs L-CC, R-CC, L-MLO and R-MLO')
        if not isinstance(names, list) or not names:
            raise fail(f'view "{view}" must be a non-empty list of image names, not {shown(names)}')
        for name in names:
            check_name(name, f'image name in "{view}"', exam=exam_id, file=file)
        images[view] = tuple(names)
    all_names = [name for view in VIEWS for name in images[view]]
    if len(set(all_names)) != len(all_names):
        raise fail("an image name appears more than once; each image belongs to one view")
    metadata: dict[str, dict[str, list[Any]]] = {}
    for key in METADATA_KEYS:
        if key not in exam_dict:
            continue
        per_view = exam_dict[key]
        if not isinstance(per_view, dict) or any(
            not isinstance(per_view.get(view), list) or len(per_view[view]) != len(images[view])
            for view in VIEWS
        ):
            raise fail(f'"{key}" must map every view to a list aligned with its images')
        metadata[key] = {view: per_view[view] for view in VIEWS}
    return Exam(exam_id, flip, images, metadata)
