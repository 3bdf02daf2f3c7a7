"""The NYU reference layout: `exam_list_before_cropping.pkl` plus a folder of PNGs.

The exam list is a pickle, read with the stages' restricted unpickler
(`stages.io.exam_lists`): a hostile file is refused by name, not executed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bcd.ingest import pngs
from bcd.ingest.records import Candidate, FileEntry, Scan, skipped
from stages.core.errors import DataError
from stages.core.exam import FLIP_VALUES, VIEWS, check_name
from stages.io.exam_lists import load_exam_list

EXAM_LIST = "exam_list_before_cropping.pkl"
IMAGE_FOLDER = "images"


def find_exam_list(src: Path) -> Path | None:
    """SRC itself when it is a .pkl file; else SRC/exam_list_before_cropping.pkl, else the
    only .pkl directly in SRC."""
    if src.is_file():
        return src if src.suffix == ".pkl" else None
    if (src / EXAM_LIST).is_file():
        return src / EXAM_LIST
    pickles = sorted(src.glob("*.pkl"))
    return pickles[0] if len(pickles) == 1 else None


def image_folder(exam_list: Path) -> Path:
    """Where the PNGs are: `images/` beside the exam list, else the list's own folder."""
    beside = exam_list.parent / IMAGE_FOLDER
    return beside if beside.is_dir() else exam_list.parent


def scan(root: Path, exam_list: Path, files: Iterable[Path]) -> Scan:
    """Candidates for every image the exam list names; every other file is skipped."""
    found = Scan("nyu")
    list_file = exam_list.relative_to(root).as_posix() if exam_list != root else exam_list.name
    try:
        exams = load_exam_list(exam_list)
    except DataError as error:
        found.skipped.append(skipped(list_file, error.reason))
        found.skipped.extend(
            skipped(_rel(root, path), "the exam list could not be read")
            for path in files
            if path != exam_list
        )
        return found
    found.used.append(FileEntry(list_file, "used", notes=[f"exam list of {len(exams)} exams"]))
    folder = image_folder(exam_list)
    named: set[Path] = set()
    for key, exam in zip(exam_keys(exams), exams, strict=True):
        named |= add_exam(found, root, key, exam, folder)
    found.skipped.extend(
        skipped(_rel(root, path), "not named in the exam list")
        for path in files
        if path != exam_list and path not in named
    )
    return found


def add_exam(found: Scan, root: Path, key: str, exam: Any, folder: Path) -> set[Path]:
    """One exam dict of an exam list, its PNGs in `folder`: its images become candidates
    and its flip is kept, or the exam is refused with the reason (reported for each of its
    files). Returns the paths of the images it names."""
    try:
        views = _views_of(key, exam)
    except DataError as error:
        found.refused_exams[key] = error.reason
        refused = {folder / f"{name}.png" for name in _safe_names(exam)}
        found.skipped.extend(
            skipped(_rel(root, path), f"exam {key} refused: {error.reason}")
            for path in sorted(refused)
            if path.is_file()
        )
        return refused
    found.given_flips[key] = exam["horizontal_flip"]
    named: set[Path] = set()
    for view, names in views.items():
        for order, name in enumerate(names):
            path = folder / f"{name}.png"
            named.add(path)
            found.candidates.append(
                Candidate(
                    file=_rel(root, path),
                    key=key,
                    view=view,
                    load=_loader(path),
                    order=(order,),
                    view_from="exam list",
                    side_from="exam list",
                )
            )
    return named


def exam_keys(exams: list[Any]) -> list[str]:
    """Each exam's name: the prefix its image names share ('0' for '0_L_CC', ...) when no
    other exam has it, else its position in the list."""
    prefixes = [_shared_prefix(exam) for exam in exams]
    taken = Counter(prefixes)
    return [
        prefix if prefix is not None and taken[prefix] == 1 else f"{prefix or 'exam'}.{index}"
        for index, prefix in enumerate(prefixes)
    ]


def _shared_prefix(exam: Any) -> str | None:
    if not isinstance(exam, dict):
        return None
    parsed = [
        pngs.parse_name(f"{name}.png")
        for view in VIEWS
        if isinstance(exam.get(view), list)
        for name in exam[view]
        if isinstance(name, str)
    ]
    prefixes = {found[0] for found in parsed if found}
    return prefixes.pop() if len(prefixes) == 1 else None


def _views_of(key: str, exam: Any) -> dict[str, list[str]]:
    """The exam's image names per view, each a safe file name; DataError naming the exam."""
    if not isinstance(exam, dict):
        raise DataError(f"exam {key}: expected an exam dict, got {type(exam).__name__}")
    if exam.get("horizontal_flip") not in FLIP_VALUES:
        raise DataError(
            f'exam {key}: "horizontal_flip" must be "NO" or "YES", not '
            f"{exam.get('horizontal_flip')!r}"
        )
    views: dict[str, list[str]] = {}
    for view in VIEWS:
        names = exam.get(view) or []
        if not isinstance(names, list):
            raise DataError(f'exam {key}: view "{view}" must be a list of image names')
        for name in names:
            check_name(name, f'image name in "{view}" of exam {key}', exam=key)
        views[view] = names
    return views


def _safe_names(exam: Any) -> list[str]:
    """The image names of a malformed exam that are safe to look up, for the report."""
    if not isinstance(exam, dict):
        return []
    names = [name for view in VIEWS if isinstance(exam.get(view), list) for name in exam[view]]
    safe = []
    for name in names:
        try:
            safe.append(check_name(name, "image name"))
        except DataError:
            continue
    return safe


def _loader(path: Path) -> Callable[[], tuple[np.ndarray, list[str]]]:
    return lambda: pngs.read_png(path)


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
