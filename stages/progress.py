"""Where a stage is inside its datum: a tqdm bar in the log and, when asked, a small JSON file.

The per-exam loop (`harness.run_exams`) says which exam it starts; the loops that take
long inside an exam (generate_heatmaps' patch batches, classify's augmentation epochs)
count their steps with `exam_steps`, which draws the bar on stderr (the datum's log).

`bcd run` names a file for each worker in $BCD_PROGRESS_FILE, outside the pfs root, and
shows on its own bar what the file says. The stage then keeps there one record, the exam
it is working on: {"stage", "exam", "done", "total", "unit", "started", "updated"}
(times in seconds since the epoch; total 0 until the exam's steps are counted). It is
rewritten whole (a temp file renamed over it) when an exam starts and ends and at most
every PROGRESS_INTERVAL_S in between, so a reader sees a whole record or the previous
one. Without the variable (a cluster, `bcd stage`) nothing is written but the log.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from stages.io.pfs import write_json

PROGRESS_FILE_ENV = "BCD_PROGRESS_FILE"
PROGRESS_INTERVAL_S = 1.0

Step = TypeVar("Step")


def exam_started(stage: str, exam: str) -> None:
    """Record that the stage begins `exam` (reading it, before any step is counted)."""
    now = time.time()
    _write(stage, exam, 0, 0, "", now, now)


def exam_steps(
    stage: str,
    exam: str,
    steps: Sequence[Step],
    unit: str,
    weight: Callable[[Step], int] = lambda _step: 1,
) -> Iterator[Step]:
    """Iterate over `steps`, counting each one as done (`weight(step)` units) once the
    loop comes back for the next; the bar and the record say `done/total unit`."""
    total = sum(weight(step) for step in steps)
    started = written = time.time()
    done = 0
    _write(stage, exam, done, total, unit, started, started)
    with tqdm(total=total, desc=exam, unit=unit, file=sys.stderr) as bar:
        for step in steps:
            yield step
            units = weight(step)
            done += units
            bar.update(units)
            now = time.time()
            if done == total or now - written >= PROGRESS_INTERVAL_S:
                _write(stage, exam, done, total, unit, started, now)
                written = now


def _write(
    stage: str, exam: str, done: int, total: int, unit: str, started: float, updated: float
) -> None:
    path = os.environ.get(PROGRESS_FILE_ENV)
    if not path:
        return
    record = {
        "stage": stage,
        "exam": exam,
        "done": done,
        "total": total,
        "unit": unit,
        "started": started,
        "updated": updated,
    }
    try:
        write_json(Path(path), record)
    except OSError as error:  # progress is for show: it never fails an exam
        print(f"bcd {stage}: progress not written to {path}: {error}", file=sys.stderr)
