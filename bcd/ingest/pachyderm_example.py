"""Pachyderm's breast-cancer-detection example: its `sample_data` as the example ships it.

One folder per exam, named after the exam, holding the exam's PNGs and
`gen_exam_list_before_cropping.pkl`, a one-exam NYU exam list. SRC is one such folder (or
its pickle) or a folder of them. Each folder is one exam, keyed by the folder's name; the
pickle is read exactly as the crop stage reads it (`stages.io.exam_files`), never run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from bcd.ingest import nyu
from bcd.ingest.records import FileEntry, Scan, skipped
from stages.core.errors import DataError
from stages.io.exam_files import EXAMPLE_EXAM_LIST, read_example_exam_dict

SOURCE = "pachyderm-example"


def find_exam_folders(src: Path) -> list[Path]:
    """The example's exam folders SRC names: SRC itself when it holds the exam list (or
    is it), else its subfolders that hold one; [] when none does."""
    if src.is_file():
        return [src.parent] if src.name == EXAMPLE_EXAM_LIST else []
    if (src / EXAMPLE_EXAM_LIST).is_file():
        return [src]
    return sorted(
        path for path in src.iterdir() if path.is_dir() and (path / EXAMPLE_EXAM_LIST).is_file()
    )


def scan(root: Path, folders: Sequence[Path], files: Iterable[Path]) -> Scan:
    """Candidates for the images each folder's exam list names; a folder whose list cannot
    be used is refused whole, with the reason on each of its files."""
    found = Scan(SOURCE)
    files = list(files)
    named: set[Path] = set()
    for folder in folders:
        key = folder.name
        exam_list = folder / EXAMPLE_EXAM_LIST
        named.add(exam_list)
        try:
            exam = read_example_exam_dict(folder)
        except DataError as error:
            found.refused_exams[key] = f"exam {key}: {error.reason}"
            found.skipped.append(skipped(_rel(root, exam_list), error.reason))
            in_folder = [path for path in files if path.parent == folder and path != exam_list]
            named.update(in_folder)
            found.skipped.extend(
                skipped(_rel(root, path), f"exam {key} refused: its exam list cannot be used")
                for path in in_folder
            )
            continue
        found.used.append(FileEntry(_rel(root, exam_list), "used", notes=[f"exam list of {key}"]))
        named |= nyu.add_exam(found, root, key, exam, folder)
    exam_folders = set(folders)
    found.skipped.extend(
        skipped(
            _rel(root, path),
            "not named in its folder's exam list"
            if path.parent in exam_folders
            else f"not in an exam folder (one holding {EXAMPLE_EXAM_LIST})",
        )
        for path in files
        if path not in named
    )
    return found


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()
