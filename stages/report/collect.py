"""Gathering a whole run for the summary: predictions, report links, error records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.core.errors import DataError
from stages.harness import error_record
from stages.io.exam_files import REPORT_HTML
from stages.io.pfs import ERROR_RECORD, exam_dirs, upstream_error
from stages.report.predictions import ExamPredictions, read_predictions

ERROR_FIELDS: tuple[str, ...] = ("exam", "stage", "file", "reason")


@dataclass(frozen=True)
class CollectedRun:
    """Everything the summary stage reports, each list sorted by exam."""

    exam_ids: list[str]
    predictions: list[ExamPredictions]
    # exam -> link to its report, relative to the summary's output directory
    report_links: dict[str, str]
    failures: list[dict[str, Any]]


def collect_run(classify_root: Path, visualize_root: Path, *, stage: str) -> CollectedRun:
    """Read every exam under the classify and visualize inputs.

    An exam has predictions when classify succeeded, and a report link when visualize
    wrote its report. Error records of both inputs are listed once each: visualize
    passes classify's records through unchanged, so identical records are merged. A
    classify output that cannot be read becomes a record of `stage`.
    """
    predictions: list[ExamPredictions] = []
    failures: list[dict[str, Any]] = []
    for exam_dir in exam_dirs(classify_root):
        record = _error_record(exam_dir, stage)
        if record is not None:
            failures.append(record)
            continue
        try:
            predictions.append(read_predictions(exam_dir, exam_dir.name))
        except DataError as error:
            failures.append(error_record(stage, error))
    report_links: dict[str, str] = {}
    for exam_dir in exam_dirs(visualize_root):
        record = _error_record(exam_dir, stage)
        if record is not None and record not in failures:
            failures.append(record)
        if (exam_dir / REPORT_HTML).is_file():
            report_links[exam_dir.name] = f"../{visualize_root.name}/{exam_dir.name}/{REPORT_HTML}"
    exam_ids = sorted({d.name for root in (classify_root, visualize_root) for d in exam_dirs(root)})
    failures.sort(key=lambda record: (str(record["exam"]), str(record["stage"])))
    return CollectedRun(exam_ids, predictions, report_links, failures)


def _error_record(exam_dir: Path, stage: str) -> dict[str, Any] | None:
    """The exam's error record with exactly the four fields, or None when it has none.

    A record that cannot be read is reported as such rather than stopping the summary.
    """
    record: dict[str, Any] | str | None
    try:
        record = upstream_error(exam_dir)
    except (OSError, ValueError) as error:
        record = f"unreadable: {error}"
    if record is None:
        return None
    if not isinstance(record, dict) or not all(field in record for field in ERROR_FIELDS):
        return {
            "exam": exam_dir.name,
            "stage": stage,
            "file": ERROR_RECORD,
            "reason": f"bad error record from {exam_dir.parent.name}: {json.dumps(record)}",
        }
    return {field: record[field] for field in ERROR_FIELDS}
