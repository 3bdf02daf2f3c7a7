"""The ingest report: every source file (used as which view of which exam, or skipped and
why), every exam, and a summary; as JSON beside DST and as a printed table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from bcd.ingest.records import FileEntry
from stages.io.pfs import write_json

# Columns wider than this (long paths) are cut, keeping their end.
_MAX_WIDTH = 48


def default_path(dst: Path) -> Path:
    """`<DST>.ingest.json`: beside DST, because everything inside DST becomes a datum."""
    return dst.with_name(f"{dst.name}.ingest.json")


def build(
    *,
    settings: dict[str, Any],
    files: Sequence[FileEntry],
    exams: Sequence[dict[str, Any]],
    skipped_exams: Sequence[tuple[str | None, str]],
) -> dict[str, Any]:
    """The report as a JSON-ready dict; files sorted by path."""
    rows = sorted(files, key=lambda entry: entry.file)
    return {
        **settings,
        "summary": {
            "files": len(rows),
            "used": sum(entry.status == "used" for entry in rows),
            "skipped": sum(entry.status == "skipped" for entry in rows),
            "exams_written": len(exams),
            "exams_skipped": len(skipped_exams),
        },
        "exams": list(exams),
        "skipped_exams": [{"exam": exam, "reason": reason} for exam, reason in skipped_exams],
        "files": [entry.to_dict() for entry in rows],
    }


def save(path: Path, report: dict[str, Any]) -> None:
    write_json(path, report)


def print_table(report: dict[str, Any], out: TextIO, *, files: bool = True) -> None:
    """One line per file (status, exam, view and image or reason, view/side source,
    file), then the summary."""
    if files:
        header = ("STATUS", "EXAM", "VIEW", "VIEW FROM", "SIDE FROM", "FILE", "IMAGE / REASON")
        rows = [
            (
                row["status"],
                row.get("exam", "-"),
                row.get("view", "-"),
                row.get("view_from", "-"),
                row.get("side_from", "-"),
                row["file"],
                row.get("image") or row.get("reason", ""),
            )
            for row in report["files"]
        ]
        widths = [
            min(_MAX_WIDTH, max(len(str(cell)) for cell in column))
            for column in zip(header, *rows, strict=True)
        ]
        for line in (header, *rows):
            cells = [_fit(str(cell), width) for cell, width in zip(line[:-1], widths, strict=False)]
            print("  ".join([*cells, str(line[-1])]), file=out)
        print(file=out)
    summary = report["summary"]
    print(
        f"{summary['exams_written']} exam(s) written to {report['destination']}, "
        f"{summary['exams_skipped']} skipped; {summary['used']} of {summary['files']} "
        f"file(s) used, {summary['skipped']} skipped",
        file=out,
    )
    for exam in report["skipped_exams"]:
        print(f"  skipped exam {exam['exam'] or '(unnamed)'}: {exam['reason']}", file=out)
    for exam in report["exams"]:
        for note in exam["notes"]:
            print(f"  {exam['exam']}: {note}", file=out)
    print(f"report: {report['report']}", file=out)


def _fit(text: str, width: int) -> str:
    """`text` padded to `width`, or its tail behind an ellipsis when longer."""
    return text.ljust(width) if len(text) <= width else "…" + text[len(text) - width + 1 :]
