"""From candidate images to complete exams: grouping, the for-presentation rule, naming,
and the exam's horizontal_flip from which way its breasts face."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass

from bcd.ingest.records import Candidate, FileEntry, skipped
from stages.core.exam import VIEWS, view_angle, view_side


@dataclass
class ExamPlan:
    """One exam to write: its id and the images of each view, in order."""

    key: str
    exam_id: str
    images: dict[str, list[Candidate]]


@dataclass
class Plans:
    exams: list[ExamPlan]
    skipped_files: list[FileEntry]
    # (exam id or None, reason) for exams not written.
    skipped_exams: list[tuple[str | None, str]]


def plan_exams(
    candidates: Sequence[Candidate], ids: dict[str, str], refused: dict[str, str]
) -> Plans:
    """Group candidates into exams; drop duplicates and superseded for-processing images;
    skip (with reason) the exams that are refused or lack a view."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.key, []).append(candidate)
    plans = Plans([], [], [])
    for key in sorted(groups, key=lambda k: ids.get(k, "")):
        members = groups[key]
        if key in refused:
            plans.skipped_exams.append((None, refused[key]))
            plans.skipped_files += [
                skipped(c.file, f"exam refused: {refused[key]}") for c in members
            ]
            continue
        exam_id = ids[key]
        kept, dropped = _drop_duplicates(members)
        kept, superseded = _prefer_presentation(kept)
        dropped += superseded
        for entry in dropped:
            entry.exam = exam_id
        plans.skipped_files += dropped
        images = {view: sorted((c for c in kept if c.view == view), key=_order) for view in VIEWS}
        missing = [view for view in VIEWS if not images[view]]
        if missing:
            reason = f"exam {exam_id} lacks {', '.join(missing)}: every exam needs all four views"
            plans.skipped_exams.append((exam_id, reason))
            plans.skipped_files += [
                skipped(c.file, reason, exam=exam_id, view=c.view, **_sources(c)) for c in kept
            ]
            continue
        plans.exams.append(ExamPlan(key, exam_id, images))
    return plans


def image_names(exam_id: str, images: Mapping[str, Sized]) -> dict[str, list[str]]:
    """`<exam>_<L|R>_<CC|MLO>` for a view's first image, then `_2`, `_3`... for the others."""
    return {
        view: [
            f"{exam_id}_{view_side(view)}_{view_angle(view)}" + (f"_{n}" if n > 1 else "")
            for n in range(1, len(images[view]) + 1)
        ]
        for view in VIEWS
    }


def decide_flip(votes: Sequence[str | None]) -> str:
    """The exam's horizontal_flip: what most images imply; "NO" (the usual raw
    orientation) on a tie or when no image could tell."""
    counts = Counter(vote for vote in votes if vote is not None)
    return "YES" if counts["YES"] > counts["NO"] else "NO"


def _drop_duplicates(members: list[Candidate]) -> tuple[list[Candidate], list[FileEntry]]:
    """The same image (SOP Instance UID) found twice is used once."""
    seen: dict[str, str] = {}
    kept: list[Candidate] = []
    dropped: list[FileEntry] = []
    for candidate in sorted(members, key=_order):
        if candidate.uid and candidate.uid in seen:
            dropped.append(
                skipped(
                    candidate.file, f"duplicate of {seen[candidate.uid]} (same SOP Instance UID)"
                )
            )
            continue
        if candidate.uid:
            seen[candidate.uid] = candidate.file
        kept.append(candidate)
    return kept, dropped


def _prefer_presentation(members: list[Candidate]) -> tuple[list[Candidate], list[FileEntry]]:
    """Where a view has a for-presentation image, its for-processing images are not used:
    screening models are trained on the presentation images."""
    presented: dict[str, str] = {}
    for candidate in sorted(members, key=_order):
        if not candidate.for_processing:
            presented.setdefault(candidate.view, candidate.file)
    kept = [c for c in members if not (c.for_processing and c.view in presented)]
    dropped = [
        skipped(
            c.file,
            f"for-processing image; the for-presentation image {presented[c.view]} of the "
            "same view is used",
            view=c.view,
            **_sources(c),
        )
        for c in members
        if c.for_processing and c.view in presented
    ]
    return kept, dropped


def _order(candidate: Candidate) -> tuple[object, ...]:
    return (candidate.order, candidate.file)


def _sources(candidate: Candidate) -> dict[str, str | None]:
    return {"view_from": candidate.view_from, "side_from": candidate.side_from}
