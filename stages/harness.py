"""What every stage entrypoint shares: common flags, the per-exam loop, error records.

A data error in one exam becomes `out/<exam>/error.json` and the loop goes on; an
upstream error record is passed through unchanged; anything else is a genuine fault and
propagates (non-zero exit), so that Pachyderm retries the datum.
"""

from __future__ import annotations

import argparse
import errno
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
from stages.progress import exam_started


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


# Exit codes: 0 done (data errors recorded), else one of these.
EXIT_STRICT_DATA_ERRORS = 1
EXIT_UNUSABLE = 2  # argparse's own code for bad arguments, too
EXIT_OUTPUT_UNWRITABLE = 3
EXIT_MEANINGS = {
    EXIT_STRICT_DATA_ERRORS: "data errors with --strict",
    EXIT_UNUSABLE: "unusable arguments or checkpoints, before any exam",
    EXIT_OUTPUT_UNWRITABLE: "outputs could not be written",
}
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


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
    already failed upstream: that record is passed through instead of processing. A full
    or read-only output stops the stage with one clear line; the exam being written is
    discarded whole, the exams already published stay.
    """
    out_root = pfs_root / "out"
    failed = 0
    try:
        remove_stale_staging(out_root)
        for exam_id in exam_ids:
            failed += not _run_exam(stage, pfs_root, exam_id, process, upstream_inputs)
    except OSError as error:
        if error.errno not in STORAGE_ERRNOS:
            raise
        print(
            f"bcd {stage}: cannot write outputs under {out_root}: {error.strerror}; free space "
            "or choose a writable --pfs, then run again (no partial exam was left)",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_OUTPUT_UNWRITABLE
    return EXIT_STRICT_DATA_ERRORS if strict and failed else 0


def _run_exam(
    stage: str,
    pfs_root: Path,
    exam_id: str,
    process: Callable[[str, Path], None],
    upstream_inputs: Sequence[str],
) -> bool:
    """One exam: its outputs, or its error record. False when it failed here."""
    out_root = pfs_root / "out"
    exam_started(stage, exam_id)
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
        return True
    try:
        with exam_output(out_root, exam_id) as staging:
            process(exam_id, staging)
    except DataError as error:
        if error.exam is None:
            error.exam = exam_id
        with exam_output(out_root, exam_id) as staging:
            write_json(staging / ERROR_RECORD, error_record(stage, error))
        print(f"bcd {stage}: ERROR {error}", file=sys.stderr, flush=True)
        return False
    return True
