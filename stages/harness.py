"""What every stage entrypoint shares: common flags, the per-exam loop, error records.

A data error in one exam becomes `out/<exam>/error.json` and the loop goes on; an
upstream error record is passed through unchanged; anything else is a genuine fault and
propagates (non-zero exit), so that Pachyderm retries the datum.

`run_exams_pipelined` is the same loop for a stage whose exam splits into load (CPU),
compute (the device) and write (CPU): while one exam computes, a thread loads the next
and another writes and publishes the previous, so a datum of several exams keeps the
device busy. At most one exam is loaded ahead and one written behind, and every exam is
published before the loop returns, i.e. before a batched stage asks for its next datum.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

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

Loaded = TypeVar("Loaded")
Computed = TypeVar("Computed")


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

    def loop() -> int:
        failed = 0
        for exam_id in exam_ids:
            if not _passed_upstream_error(stage, pfs_root, exam_id, upstream_inputs):
                exam_started(stage, exam_id)
                failed += not _publish_exam(stage, pfs_root, exam_id, process)
        return failed

    return _exit_code(stage, pfs_root, loop, strict)


def run_exams_pipelined(
    stage: str,
    pfs_root: Path,
    exam_ids: Sequence[str],
    load: Callable[[str], Loaded],
    compute: Callable[[str, Loaded], Computed],
    write: Callable[[str, Computed, Path], None],
    *,
    upstream_inputs: Sequence[str] = (),
    strict: bool = False,
) -> int:
    """`run_exams` with each exam as `write(exam_id, compute(exam_id, load(exam_id)), staging)`.

    `compute` runs on the calling thread, one exam after another; `load` (which must be
    safe to run beside `compute`) of the next exam and `write` of the previous one run on
    worker threads meanwhile. A DataError from any of the three is that exam's error
    record; anything else propagates once the threads have stopped.
    """

    def write_computed(computed: Computed, exam_id: str, staging: Path) -> None:
        write(exam_id, computed, staging)

    def loop(workers: ThreadPoolExecutor) -> int:
        failed = 0
        ahead: tuple[str, Future[Loaded]] | None = None
        behind: Future[bool] | None = None
        for position, exam_id in enumerate(exam_ids):
            loading = ahead[1] if ahead is not None and ahead[0] == exam_id else None
            ahead = None
            if _passed_upstream_error(stage, pfs_root, exam_id, upstream_inputs):
                continue
            following = exam_ids[position + 1] if position + 1 < len(exam_ids) else None
            if following is not None and not _upstream_record(pfs_root, following, upstream_inputs):
                ahead = (following, workers.submit(load, following))
            exam_started(stage, exam_id)
            try:
                computed = compute(exam_id, load(exam_id) if loading is None else loading.result())
            except DataError as error:
                _record_data_error(stage, pfs_root, exam_id, error)
                failed += 1
                continue
            if behind is not None:
                failed += not behind.result()
            writer = partial(write_computed, computed)
            behind = workers.submit(_publish_exam, stage, pfs_root, exam_id, writer)
        if behind is not None:
            failed += not behind.result()
        return failed

    def run_with_threads() -> int:
        workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"bcd-{stage}")
        try:
            return loop(workers)
        finally:
            # An unstarted load or write is dropped (its exam stays unpublished); a
            # running one finishes: nothing is left half-written or running.
            workers.shutdown(wait=True, cancel_futures=True)

    return _exit_code(stage, pfs_root, run_with_threads, strict)


def _exit_code(stage: str, pfs_root: Path, loop: Callable[[], int], strict: bool) -> int:
    """Run the per-exam `loop` (it returns how many exams failed) for the exit code."""
    out_root = pfs_root / "out"
    try:
        remove_stale_staging(out_root)
        failed = loop()
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


def _upstream_record(
    pfs_root: Path, exam_id: str, upstream_inputs: Sequence[str]
) -> dict[str, Any] | None:
    return next(
        (
            record
            for name in upstream_inputs
            if (record := upstream_error(pfs_root / name / exam_id)) is not None
        ),
        None,
    )


def _passed_upstream_error(
    stage: str, pfs_root: Path, exam_id: str, upstream_inputs: Sequence[str]
) -> bool:
    """Publish the exam's upstream error record as its output, if it has one."""
    passed_error = _upstream_record(pfs_root, exam_id, upstream_inputs)
    if passed_error is None:
        return False
    with exam_output(pfs_root / "out", exam_id) as staging:
        write_json(staging / ERROR_RECORD, passed_error)
    print(
        f"bcd {stage}: {exam_id}: skipped, failed upstream in "
        f"{passed_error.get('stage')}: {passed_error.get('reason')}",
        file=sys.stderr,
        flush=True,
    )
    return True


def _publish_exam(
    stage: str, pfs_root: Path, exam_id: str, process: Callable[[str, Path], None]
) -> bool:
    """One exam: its outputs, or its error record. False when it failed here."""
    try:
        with exam_output(pfs_root / "out", exam_id) as staging:
            process(exam_id, staging)
    except DataError as error:
        _record_data_error(stage, pfs_root, exam_id, error)
        return False
    return True


def _record_data_error(stage: str, pfs_root: Path, exam_id: str, error: DataError) -> None:
    if error.exam is None:
        error.exam = exam_id
    with exam_output(pfs_root / "out", exam_id) as staging:
        write_json(staging / ERROR_RECORD, error_record(stage, error))
    print(f"bcd {stage}: ERROR {error}", file=sys.stderr, flush=True)
