"""What each running datum is doing, shown on its pipeline's bar.

Every slot (a datum at a time, or a batching worker's datum set) gets a progress file of
its own, named to the command in BCD_PROGRESS_FILE; a stage keeps there a record of the
exam in hand (stages/progress.py). While a job runs, a thread reads the running slots'
files every second and puts one short status per slot in the bar's postfix, e.g.
`exam-1: 1,200/2,747 patches, ETA 1:20 | exam-2: starting`, so the line stays one line
(tqdm trims it to the terminal). When a datum ends its last record goes into its log
(`=== bcd run: last progress: ...`) and the file is cleared for the next datum.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Never

from tqdm import tqdm

from stages.progress import PROGRESS_FILE_ENV

POLL_INTERVAL_S = 1.0
STARTING = "starting"


def describe(record: Mapping[str, Any], pipeline: str, now: float) -> str:
    """One slot's status: the exam, its steps done of total and the time they need yet.

    The ETA assumes the steps go on at the rate they went so far, and counts the time
    since the record was written as spent.
    """
    exam = str(record["exam"])
    if record["stage"] != pipeline:  # a stage of the single-stage pipeline
        exam = f"{exam} {record['stage']}"
    done, total = int(record["done"]), int(record["total"])
    if not total:
        return exam
    text = f"{exam}: {done:,}/{total:,} {record['unit']}"
    if 0 < done < total:
        elapsed = float(record["updated"]) - float(record["started"])
        left = elapsed / done * (total - done) - (now - float(record["updated"]))
        text += f", ETA {_clock(max(0.0, left))}"
    return text


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def read_record(path: Path) -> dict[str, Any] | None:
    """The record a stage left, None when there is none (yet) or it is not one."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = {"stage", "exam", "done", "total", "unit", "started", "updated"}
    return record if isinstance(record, dict) and keys <= record.keys() else None


class ProgressBoard:
    """The progress files of one job's slots, and the thread that shows them on `bar`."""

    def __init__(self, bar: tqdm[Never], pipeline: str, folder: Path, show: bool) -> None:
        self._bar = bar
        self._pipeline = pipeline
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if show:
            self._thread = threading.Thread(target=self._show, daemon=True)
            self._thread.start()

    def file(self, slot: int) -> Path:
        return self._folder / f"slot-{slot}.json"

    def env(self, slot: int) -> dict[str, str]:
        """What tells the slot's command where to write its progress."""
        return {PROGRESS_FILE_ENV: str(self.file(slot))}

    @contextmanager
    def running(self, slot: int) -> Iterator[None]:
        """The slot runs datums for the duration: its status is shown."""
        self.file(slot).unlink(missing_ok=True)
        with self._lock:
            self._running.add(slot)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(slot)
            self.file(slot).unlink(missing_ok=True)

    def datum_ended(self, slot: int) -> str | None:
        """The last status of the slot's datum, which just ended; the slot starts afresh."""
        path = self.file(slot)
        record = read_record(path)
        path.unlink(missing_ok=True)
        return None if record is None else describe(record, self._pipeline, time.time())

    def status(self) -> str:
        """Every running slot's status, in slot order."""
        with self._lock:
            slots = sorted(self._running)
        now = time.time()
        statuses = []
        for slot in slots:
            record = read_record(self.file(slot))
            statuses.append(STARTING if record is None else describe(record, self._pipeline, now))
        return " | ".join(statuses)

    def _show(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            self._bar.set_postfix_str(self.status(), refresh=True)

    def close(self) -> None:
        """Stop showing; the bar keeps its last counts, without statuses."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._bar.set_postfix_str("", refresh=False)

    def __enter__(self) -> ProgressBoard:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
