"""What the source readers hand to the exam assembly, and one report row per file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Candidate:
    """An image that may become one view of one exam.

    `key` groups images into exams; it may hold patient identifiers, so it never leaves
    the process (exam ids are derived from it). `load` reads the pixels as uint16, with
    notes on what was done to them, and raises DataError when they cannot be decoded.
    """

    file: str
    key: str
    view: str
    load: Callable[[], tuple[np.ndarray, list[str]]]
    order: tuple[Any, ...] = ()
    view_from: str | None = None
    side_from: str | None = None
    for_processing: bool = False
    uid: str | None = None


@dataclass
class FileEntry:
    """One row of the ingest report: a source file, used or skipped."""

    file: str
    status: str
    reason: str | None = None
    exam: str | None = None
    view: str | None = None
    image: str | None = None
    view_from: str | None = None
    side_from: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        row = {key: value for key, value in vars(self).items() if value not in (None, [])}
        return row


def skipped(file: str, reason: str, **details: Any) -> FileEntry:
    """A report row for a file that was not used."""
    return FileEntry(file, "skipped", reason=reason, **details)


@dataclass
class Scan:
    """What a source reader found under SRC."""

    source_type: str
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[FileEntry] = field(default_factory=list)
    # Files used without being images (the NYU exam list).
    used: list[FileEntry] = field(default_factory=list)
    # horizontal_flip stated by the source per exam key (NYU layout); else from pixels.
    given_flips: dict[str, str] = field(default_factory=dict)
    # Exams refused before assembly (bad names in an exam list), by exam key.
    refused_exams: dict[str, str] = field(default_factory=dict)
