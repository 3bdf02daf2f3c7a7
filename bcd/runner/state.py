"""What the runner remembers per pipeline between runs, kept crash-safe.

For each datum ID: the datum hash, its state (processed, recovered or failed), the output
files it published and the job that produced it. A record from a job that later failed is
marked untrusted: like Pachyderm, which never takes a failed job as the base, the next job
does not skip it. A record from a job that was interrupted (the runner was killed) stays
trusted, so the next run resumes instead of starting over.

Storage: `state.json` (a snapshot, replaced atomically) plus `log-<generation>.jsonl`, an
append-only log of changes since that snapshot, each line fsynced before the change it
announces is made on disk. Only the last line can be torn or describe unfinished work: a
trailing "put" that names a staging folder is a publish that may have stopped half-way,
and is handed back as `pending` so that it can be finished (see `outputs`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stages.io.pfs import atomic_write_bytes

PROCESSED = "processed"
RECOVERED = "recovered"
FAILED = "failed"

_SNAPSHOT = "state.json"
_VERSION = 1


@dataclass
class DatumRecord:
    """One datum's last outcome and the output files it owns in the output repo."""

    hash: str
    state: str
    job: str
    files: list[str] = field(default_factory=list)
    trusted: bool = True


@dataclass(frozen=True)
class PendingPublish:
    """A publish the log announced last: its files may still sit in `staged`."""

    datum: str
    staged: Path
    files: list[str]


class PipelineState:
    """The records of one pipeline, loaded from and saved to `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.salt: str | None = None
        self.records: dict[str, DatumRecord] = {}
        self.generation = 0
        self.pending: PendingPublish | None = None

    @classmethod
    def load(cls, folder: Path) -> PipelineState:
        """Snapshot plus log replay; `pending` is set when the log ends in a publish."""
        state = cls(folder)
        snapshot = folder / _SNAPSHOT
        if snapshot.is_file():
            saved = json.loads(snapshot.read_text(encoding="utf-8"))
            state.generation = saved["generation"]
            state.salt = saved["salt"]
            state.records = {key: DatumRecord(**value) for key, value in saved["records"].items()}
        last: dict[str, Any] | None = None
        for entry in state._log_entries():
            state._apply(entry)
            last = entry
        if last is not None and last["op"] == "put" and last.get("staged"):
            state.pending = PendingPublish(
                last["datum"], Path(last["staged"]), last["record"]["files"]
            )
        return state

    def _log_path(self) -> Path:
        return self.folder / f"log-{self.generation}.jsonl"

    def _log_entries(self) -> list[dict[str, Any]]:
        path = self._log_path()
        if not path.is_file():
            return []
        entries = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a killed run: the change it announced never began
        return entries

    def _apply(self, entry: dict[str, Any]) -> None:
        op = entry["op"]
        if op == "job":
            self.salt = entry["salt"]
        elif op == "put":
            self.records[entry["datum"]] = DatumRecord(**entry["record"])
        elif op == "drop":
            self.records.pop(entry["datum"], None)
        elif op == "end" and not entry["ok"]:
            for record in self.records.values():
                if record.job == entry["job"]:
                    record.trusted = False

    def _append(self, entry: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with open(self._log_path(), "a", encoding="utf-8") as log:
            log.write(line)
            log.flush()
            os.fsync(log.fileno())
        self._apply(entry)

    def start_job(self, job: str, salt: str) -> None:
        """A job begins with this salt (a new one after --reprocess)."""
        self._append({"op": "job", "job": job, "salt": salt})

    def put(self, datum: str, record: DatumRecord, staged: Path | None = None) -> None:
        """Record a datum's outcome; with `staged`, before its files are moved from there."""
        entry: dict[str, Any] = {"op": "put", "datum": datum, "record": asdict(record)}
        if staged is not None:
            entry["staged"] = str(staged)
        self._append(entry)

    def drop(self, datum: str) -> None:
        """Forget a datum, before its output files are deleted."""
        self._append({"op": "drop", "datum": datum})

    def end_job(self, job: str, ok: bool) -> None:
        """Close a job; a failed job's records stop counting for skips. Then compact."""
        self._append({"op": "end", "job": job, "ok": ok})
        self.compact()

    def compact(self) -> None:
        """Fold the log into a new snapshot and start an empty log."""
        self.folder.mkdir(parents=True, exist_ok=True)
        old_log = self._log_path()
        snapshot = {
            "version": _VERSION,
            "generation": self.generation + 1,
            "salt": self.salt,
            "records": {key: asdict(record) for key, record in self.records.items()},
        }
        atomic_write_bytes(self.folder / _SNAPSHOT, json.dumps(snapshot).encode())
        self.generation += 1
        self.pending = None
        old_log.unlink(missing_ok=True)

    def skippable(self, datum: str, datum_hash: str) -> bool:
        """Pachyderm's rule: same hash, last outcome processed, from a job that did not fail."""
        record = self.records.get(datum)
        return (
            record is not None
            and record.trusted
            and record.state == PROCESSED
            and record.hash == datum_hash
        )

    def owned_files(self) -> dict[str, str]:
        """Output file -> the datum that owns it."""
        return {path: datum for datum, record in self.records.items() for path in record.files}
