"""Write one planned exam into DST: pixels loaded, orientation made consistent, and the
exam directory published whole (staged, then renamed) or not at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bcd.ingest import pixels
from bcd.ingest.exams import ExamPlan, decide_flip, image_names
from bcd.ingest.records import Candidate, FileEntry, skipped
from stages.core.errors import DataError
from stages.core.exam import VIEWS, exam_from_dict, view_side
from stages.io.exam_files import EXAM_JSON
from stages.io.images import write_png
from stages.io.pfs import exam_output, write_json


@dataclass
class Outcome:
    """What happened to one planned exam: its report record if written, every file's row."""

    files: list[FileEntry] = field(default_factory=list)
    exam: dict[str, Any] | None = None
    skip_reason: str | None = None


@dataclass
class _Loaded:
    candidate: Candidate
    image: np.ndarray
    notes: list[str]


def write_exam(dst: Path, plan: ExamPlan, given_flip: str | None = None) -> Outcome:
    """Load, orient and write one exam; an image that cannot be read is skipped, and an
    exam left without a view is not written."""
    outcome = Outcome()
    loaded: dict[str, list[_Loaded]] = {view: [] for view in VIEWS}
    for view in VIEWS:
        for candidate in plan.images[view]:
            try:
                image, notes = candidate.load()
            except DataError as error:
                outcome.files.append(_skipped(candidate, plan.exam_id, error.reason))
                continue
            if candidate.for_processing:
                notes.append("for-processing image: this view has no for-presentation image")
            loaded[view].append(_Loaded(candidate, image, notes))
    missing = [view for view in VIEWS if not loaded[view]]
    if missing:
        outcome.skip_reason = (
            f"exam {plan.exam_id} not written: no readable image for {', '.join(missing)}"
        )
        outcome.files += [
            _skipped(item.candidate, plan.exam_id, outcome.skip_reason)
            for view in VIEWS
            for item in loaded[view]
        ]
        return outcome

    names = image_names(plan.exam_id, {view: loaded[view] for view in VIEWS})
    flip, exam_notes = _orient(loaded, names, given_flip)
    exam = exam_from_dict(plan.exam_id, {"horizontal_flip": flip, **names})
    with exam_output(dst, plan.exam_id) as staging:
        for view in VIEWS:
            for item, name in zip(loaded[view], names[view], strict=True):
                write_png(staging / f"{name}.png", item.image)
        write_json(staging / EXAM_JSON, exam.to_dict())
    for view in VIEWS:
        for item, name in zip(loaded[view], names[view], strict=True):
            c = item.candidate
            outcome.files.append(
                FileEntry(
                    c.file,
                    "used",
                    exam=plan.exam_id,
                    view=view,
                    image=name,
                    view_from=c.view_from,
                    side_from=c.side_from,
                    notes=item.notes,
                )
            )
    outcome.exam = {
        "exam": plan.exam_id,
        "horizontal_flip": flip,
        "images": names,
        "notes": exam_notes,
    }
    return outcome


def _orient(
    loaded: dict[str, list[_Loaded]], names: dict[str, list[str]], given_flip: str | None
) -> tuple[str, list[str]]:
    """The exam's horizontal_flip, mirroring (in place) images that face the other way.

    With a flip stated by the source it is kept, and disagreeing images are only noted.
    """
    votes: list[tuple[_Loaded, str, str | None]] = []
    for view in VIEWS:
        for item, name in zip(loaded[view], names[view], strict=True):
            chest_wall = pixels.chest_wall_side(item.image)
            vote = pixels.flip_of(view_side(view), chest_wall) if chest_wall else None
            if vote is None:
                item.notes.append("could not tell which way the breast faces")
            votes.append((item, name, vote))
    if given_flip is not None:
        notes = [
            f"{name}: the pixels suggest horizontal_flip {vote}, the source says {given_flip}"
            for _, name, vote in votes
            if vote is not None and vote != given_flip
        ]
        return given_flip, notes
    flip = decide_flip([vote for _, _, vote in votes])
    notes = []
    for item, name, vote in votes:
        if vote is not None and vote != flip:
            item.image = np.ascontiguousarray(np.fliplr(item.image))
            item.notes.append(f"mirrored left-right to match the exam (horizontal_flip {flip})")
            notes.append(f"{name} faced the other way from the exam's other views: mirrored")
    return flip, notes


def _skipped(candidate: Candidate, exam_id: str, reason: str) -> FileEntry:
    return skipped(
        candidate.file,
        reason,
        exam=exam_id,
        view=candidate.view,
        view_from=candidate.view_from,
        side_from=candidate.side_from,
    )
