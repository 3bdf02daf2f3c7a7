"""What a run did: per pipeline job counts and failures, plus the exams with error records.

Any `error.json` in an output repo is an exam's error record ({"exam", "stage", "file",
"reason"}); one record passed down unchanged through several stages is reported once,
with every place it was found.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stages.io.pfs import ERROR_RECORD

SUCCESS = "success"
FAILURE = "failed"
UNRUNNABLE = "unrunnable"
NOT_RUN = "not run"


@dataclass
class DatumFailure:
    """A datum that failed for good (or could not be merged)."""

    datum: str
    inputs: list[str]
    reason: str
    log: str | None = None


@dataclass
class JobSummary:
    """One pipeline's job in this run."""

    pipeline: str
    status: str = SUCCESS
    reason: str = ""
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    recovered: int = 0
    deleted: int = 0
    seconds: float = 0.0
    failures: list[DatumFailure] = field(default_factory=list)


@dataclass
class ExamError:
    """One exam error record, and the output files that carry it."""

    exam: str | None
    stage: str | None
    file: str | None
    reason: str | None
    found_in: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    """The whole run; `ok` is what the exit code reports."""

    run_id: str
    jobs: list[JobSummary] = field(default_factory=list)
    exam_errors: list[ExamError] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and all(job.status == SUCCESS for job in self.jobs)
            and not self.exam_errors
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "error": self.error,
            "pipelines": [asdict(job) for job in self.jobs],
            "failed_exams": [asdict(record) for record in self.exam_errors],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def format_text(self) -> str:
        lines = [
            f"{'pipeline':<24}{'status':<12}{'processed':>10}{'skipped':>9}{'failed':>8}"
            f"{'recovered':>11}{'seconds':>9}"
        ]
        for job in self.jobs:
            lines.append(
                f"{job.pipeline:<24}{job.status:<12}{job.processed:>10}{job.skipped:>9}"
                f"{job.failed:>8}{job.recovered:>11}{job.seconds:>9.1f}"
            )
            if job.reason:
                lines.append(f"    {job.reason}")
            for failure in job.failures:
                where = f" (log: {failure.log})" if failure.log else ""
                inputs = ", ".join(failure.inputs)
                lines.append(f"    datum {failure.datum[:12]} [{inputs}]: {failure.reason}{where}")
        if self.exam_errors:
            lines.append(f"failed exams ({len(self.exam_errors)}):")
            for record in self.exam_errors:
                file_part = f" {record.file}" if record.file else ""
                lines.append(
                    f"  {record.exam} [{record.stage}]{file_part}: {record.reason} "
                    f"({', '.join(record.found_in)})"
                )
        if self.error:
            lines.append(f"run stopped: {self.error}")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def find_exam_errors(repos: list[Path], relative_to: Path) -> list[ExamError]:
    """Every error record in these output repos, identical records merged."""
    merged: dict[tuple[Any, ...], ExamError] = {}
    for repo in repos:
        for path in _error_records(repo):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = {"reason": "unreadable error record"}
            if not isinstance(record, dict):
                record = {"reason": "error record is not a JSON object"}
            fields = tuple(str(record.get(key)) for key in ("exam", "stage", "file", "reason"))
            entry = merged.setdefault(
                fields,
                ExamError(
                    exam=record.get("exam", path.parent.name),
                    stage=record.get("stage"),
                    file=record.get("file"),
                    reason=record.get("reason"),
                ),
            )
            entry.found_in.append(str(path.relative_to(relative_to)))
    return list(merged.values())


def _error_records(repo: Path) -> list[Path]:
    if not repo.is_dir():
        return []
    found = []
    for directory, _dirs, names in os.walk(repo):
        if ERROR_RECORD in names:
            found.append(Path(directory) / ERROR_RECORD)
    return sorted(found)
