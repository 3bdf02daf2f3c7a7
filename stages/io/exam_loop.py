"""What every stage entrypoint shares: common flags, the per-exam loop, error records.

A data error in one exam becomes `out/<exam>/error.json` and the loop goes on; an
upstream error record is passed through unchanged; anything else is a genuine fault and
propagates (non-zero exit), so that Pachyderm retries the datum.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stages.core.errors import DataError
from stages.io.pfs import (
    ERROR_RECORD,
    exam_output,
    remove_stale_staging,
    upstream_error,
    write_json,
)


def stage_parser(stage: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every stage takes."""
    parser = argparse.ArgumentParser(prog=f"bcd stage {stage}", description=description)
    parser.add_argument(
        "--pfs",
        metavar="DIR",
        help="root holding the input repos and out/ (default: $PFS_ROOT, else /pfs)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit non-zero when any exam had a data error (default: record it and exit 0)",
    )
    return parser


def warn(stage: str, exam: str, file: str | None, message: str) -> None:
    """One warning line on stderr naming stage, exam and file."""
    where = f"{exam}/{file}" if file else exam
    print(f"bcd {stage}: warning: {where}: {message}", file=sys.stderr, flush=True)


def error_record(stage: str, error: DataError) -> dict[str, str | None]:
    """The JSON error record of one exam."""
    return {"exam": error.exam, "stage": stage, "file": error.file, "reason": error.reason}


def run_exams(
    stage: str,
    pfs_root: Path,
    exam_ids: Sequence[str],
    process: Callable[[str, Path], None],
    *,
    upstream_inputs: Sequence[str] = (),
    strict: bool = False,
) -> int:
    """Run `process(exam_id, staging_dir)` for each exam; return the stage's exit code.

    `upstream_inputs` are the input names whose `<exam>/error.json` means the exam
    already failed upstream: that record is passed through instead of processing.
    """
    out_root = pfs_root / "out"
    remove_stale_staging(out_root)
    failed = 0
    for exam_id in exam_ids:
        passed_error = next(
            (
                record
                for name in upstream_inputs
                if (record := upstream_error(pfs_root / name / exam_id)) is not None
            ),
            None,
        )
        if passed_error is not None:
            with exam_output(out_root, exam_id) as staging:
                write_json(staging / ERROR_RECORD, passed_error)
            print(
                f"bcd {stage}: {exam_id}: skipped, failed upstream in "
                f"{passed_error.get('stage')}: {passed_error.get('reason')}",
                file=sys.stderr,
                flush=True,
            )
            continue
        try:
            with exam_output(out_root, exam_id) as staging:
                process(exam_id, staging)
        except DataError as error:
            if error.exam is None:
                error.exam = exam_id
            failed += 1
            with exam_output(out_root, exam_id) as staging:
                write_json(staging / ERROR_RECORD, error_record(stage, error))
            print(f"bcd {stage}: ERROR {error}", file=sys.stderr, flush=True)
    return 1 if strict and failed else 0
