"""Datum batching (`transform.datum_batching`): one command process serves a datum set.

As Pachyderm's worker does (transform/worker.go `handleDatumSetBatching`):

- The datums to process are cut into sets (`datum_sets`, registry.go `createSetSpec`):
  `datum_set_spec.size_bytes` of input a set, else `number` datums a set, else
  datums ÷ (workers × `per_worker`, 4 unless set), at least 1. Workers take sets in turn.
- A worker keeps one pfs root for the whole job (PFS_ROOT). Each command start gets a
  Worker API server of its own (`worker_api`, PPS_WORKER_GRPC_PORT) and the job's
  environment without datum variables, plus `transform.stdin`. Its first NextDatum call
  says it is ready; nothing is in the root before the first reply.
- For each datum the root is laid out anew (inputs linked, an empty `out/`, `.env` with
  the datum's environment, one KEY=VALUE a line) and the waiting call is answered with the
  same environment. The next call without an error means the datum succeeded: its `out/`
  is moved aside to be published before the root is touched again. An error in that call,
  the command exiting (even with status 0: a batching command never ends by itself) or
  datum_timeout expiring fails the attempt: the command is killed, err_cmd runs, and the
  next attempt gets a new command, up to datum_tries attempts per datum.
- When the set is done, the command is killed.

Where this differs: Pachyderm starts the command again right after a failed attempt;
here the next command starts when a datum needs it, so a command that exits before its
first NextDatum call fails the attempt of the datum it was started for (on a cluster it
fails the datum set). The client's `batch_datum()` reloads the fixed path /pfs/.env,
which does not exist here: code takes the datum's environment from the reply or from
`$PFS_ROOT/.env` (README, "The local runner").
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bcd.runner.datums import Datum
from bcd.runner.execute import (
    DatumJob,
    DatumResult,
    OutputError,
    RunningProcesses,
    exit_reason,
    finalize_outputs,
    kill_group,
    link_inputs,
    log_line,
    read_tail,
    run_command,
    start_command,
    stdin_bytes,
    user_code_env,
)
from bcd.runner.spec import DatumSetSpec
from bcd.runner.state import FAILED, PROCESSED, RECOVERED
from bcd.runner.worker_api import PORT_ENV, NextDatumCall, WorkerApiServer

# Pachyderm's defaultDatumSetsPerWorker: without a datum_set_spec, each worker's code
# starts about this many times per job.
DEFAULT_SETS_PER_WORKER = 4
ENV_FILE = ".env"


def datum_sets(datums: list[Datum], spec: DatumSetSpec, workers: int) -> list[list[Datum]]:
    """Cut the datums to process into datum sets, in order, as Pachyderm does."""
    if not datums:
        return []
    if spec.size_bytes > 0:
        return _sets_by_size(datums, spec.size_bytes)
    number = spec.number or len(datums) // (workers * (spec.per_worker or DEFAULT_SETS_PER_WORKER))
    number = max(1, number)
    return [datums[start : start + number] for start in range(0, len(datums), number)]


def _sets_by_size(datums: list[Datum], size_bytes: int) -> list[list[Datum]]:
    """A new set starts once the current one holds at least `size_bytes` of input."""
    sets: list[list[Datum]] = [[]]
    size = 0
    for datum in datums:
        if size >= size_bytes:
            sets.append([])
            size = 0
        sets[-1].append(datum)
        size += sum(_input_bytes(item.source) for item in datum.inputs)
    return sets


def _input_bytes(path: Path) -> int:
    """Size of a matched file, or of every file under a matched directory."""
    if not path.is_dir():
        return path.stat().st_size
    return sum(
        (Path(folder) / name).stat().st_size
        for folder, _dirs, names in os.walk(path, followlinks=True)
        for name in names
    )


@dataclass(frozen=True)
class BatchWorker:
    """One worker of a batching job: its pfs root, slot environment and command log."""

    root: Path
    staging: Path
    env: Mapping[str, str]
    log: BinaryIO
    log_path: Path


@contextmanager
def open_worker(
    root: Path, staging: Path, env: Mapping[str, str], log_path: Path
) -> Iterator[BatchWorker]:
    """A worker for one job. `staging`: where datums' outputs wait, `<staging>/<ID>/out`."""
    root.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        yield BatchWorker(root, staging, env, log, log_path)


def run_datum_set(
    job: DatumJob,
    datums: list[Datum],
    worker: BatchWorker,
    processes: RunningProcesses,
    report: Callable[[Datum, DatumResult], None],
) -> None:
    """Serve a datum set to one command (restarted after failures); report each datum."""
    serving = _SetServer(job, worker, processes)
    try:
        for datum in datums:
            if processes.stopped:
                return
            report(datum, serving.run(datum))
    finally:
        serving.stop_code("datum set done")


class _Command:
    """One start of the user code and the Worker API server it talks to.

    Started from the worker's own thread, which outlives it: the launcher's parent-death
    signal follows the thread that started a process, not the runner as a whole.
    """

    def __init__(self, job: DatumJob, worker: BatchWorker, processes: RunningProcesses):
        self._events: queue.Queue[NextDatumCall | int] = queue.Queue()
        self.api = WorkerApiServer(self._events.put)
        self._processes = processes
        env = user_code_env(job, None, worker.root, {**worker.env, PORT_ENV: str(self.api.port)})
        stdin = stdin_bytes(job.transform.stdin)
        try:
            self.process = start_command(
                job.transform.cmd, env, worker.log, processes, stdin=stdin is not None
            )
        except BaseException:
            self.api.close()
            raise
        self._watcher = threading.Thread(target=self._watch, args=(stdin,), daemon=True)
        self._watcher.start()

    def _watch(self, stdin: bytes | None) -> None:
        self.process.communicate(stdin)
        self._events.put(self.process.returncode)

    def next_event(self, deadline: float | None) -> NextDatumCall | int | None:
        """The next NextDatum call, or the exit status, or None when `deadline` passed."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        """Kill the code's process group, then close its server (open calls end)."""
        kill_group(self.process.pid)
        self._watcher.join()
        self._processes.discard(self.process.pid)
        self.api.close()


class _SetServer:
    """Plays one datum set for a worker: datums in turn, the code (re)started as needed."""

    def __init__(self, job: DatumJob, worker: BatchWorker, processes: RunningProcesses):
        self.job = job
        self.worker = worker
        self.processes = processes
        self._command: _Command | None = None
        self._waiting: NextDatumCall | None = None  # the code's call awaiting a datum

    def run(self, datum: Datum) -> DatumResult:
        """Every attempt the datum is allowed until one succeeds; never raises for user code."""
        start = time.monotonic()
        log_start = self._log_size()
        recovered = False
        reason = ""
        attempt = 0
        for attempt in range(1, self.job.tries + 1):
            inputs = ", ".join(f"{item.name}:{item.path}" for item in datum.inputs)
            log_line(
                self.worker.log,
                f"datum {datum.id} [{inputs}] attempt {attempt}/{self.job.tries}",
            )
            reason, env = self._attempt(datum)
            if not reason:
                try:
                    files = finalize_outputs(self.worker.root / "out")
                except OutputError as error:
                    reason = str(error)
                else:
                    return DatumResult(
                        datum.id,
                        PROCESSED,
                        out_dir=self._stage(datum),
                        files=files,
                        attempts=attempt,
                        seconds=time.monotonic() - start,
                        log=self.worker.log_path,
                    )
            log_line(self.worker.log, f"attempt {attempt} failed: {reason}")
            self.stop_code("failed attempt")
            if self.job.transform.err_cmd:
                log_line(self.worker.log, f"err_cmd: {' '.join(self.job.transform.err_cmd)}")
                error_reason = run_command(
                    self.job.transform.err_cmd,
                    self.job.transform.err_stdin,
                    env,
                    self.worker.log,
                    self.job,
                    self.processes,
                )
                recovered = recovered or not error_reason
            if self.processes.stopped:
                break
        return DatumResult(
            datum.id,
            RECOVERED if recovered else FAILED,
            reason=reason,
            attempts=attempt,
            seconds=time.monotonic() - start,
            log=self.worker.log_path,
            log_tail=read_tail(self.worker.log_path, log_start),
        )

    def _attempt(self, datum: Datum) -> tuple[str, dict[str, str]]:
        """Hand the datum to a ready code and wait for its verdict: ("", env) on success.

        The datum is laid out either way, so that err_cmd sees it.
        """
        reason = self._ready()
        extra = dict(self.worker.env)
        if self._command is not None:
            extra[PORT_ENV] = str(self._command.api.port)
        env = user_code_env(self.job, datum, self.worker.root, extra)
        self._lay_out(datum, env)
        if reason:
            return reason, env
        # _ready() succeeded: a command runs and its call waits for this datum.
        assert self._command is not None and self._waiting is not None
        limit = _limit(self.job.timeout, self.job.deadline)
        self._waiting.reply([f"{key}={value}" for key, value in env.items()])
        self._waiting = None
        event = self._command.next_event(None if limit is None else time.monotonic() + limit)
        if event is None:
            assert limit is not None  # no deadline, no timeout
            return f"timed out after {limit:g}s (datum_timeout/job_timeout); user code killed", env
        if isinstance(event, int):
            return (
                f"user code exited prematurely ({exit_reason(event)}): a batching command "
                "keeps calling NextDatum until it is stopped",
                env,
            )
        if event.error:
            return f"user code reported an error: {event.error}", env
        self._waiting = event
        return "", env

    def _ready(self) -> str:
        """Make sure a code waits in NextDatum, starting one if needed; "" or why not."""
        if self._waiting is not None:
            return ""
        if self.job.deadline is not None and time.monotonic() >= self.job.deadline:
            return "job_timeout expired"
        self._clear_root()
        self._command = _Command(self.job, self.worker, self.processes)
        log_line(
            self.worker.log,
            f"user code started (pid {self._command.process.pid}, "
            f"worker API on 127.0.0.1:{self._command.api.port})",
        )
        event = self._command.next_event(self.job.deadline)
        if isinstance(event, NextDatumCall):
            # Pachyderm ignores the error of the first call: no datum was given yet.
            self._waiting = event
            return ""
        if event is None:
            return "job_timeout expired before the user code called NextDatum"
        return (
            f"user code exited before asking for a datum ({exit_reason(event)}): with "
            "transform.datum_batching it must call the worker API, e.g. pachyderm_sdk's "
            "Client().worker.next_datum() or batch_all_datums"
        )

    def _lay_out(self, datum: Datum, env: Mapping[str, str]) -> None:
        root = self.worker.root
        self._clear_root()
        (root / "out").mkdir()
        link_inputs(root, datum)
        (root / ENV_FILE).write_text("".join(f"{key}={value}\n" for key, value in env.items()))

    def _clear_root(self) -> None:
        """Empty the root, keeping the folder itself (the code may hold it as its cwd)."""
        for entry in self.worker.root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _stage(self, datum: Datum) -> Path:
        """Move the datum's finished out/ where it waits to be published."""
        staged = self.worker.staging / datum.id
        staged.mkdir(parents=True, exist_ok=True)
        os.replace(self.worker.root / "out", staged / "out")
        return staged / "out"

    def _log_size(self) -> int:
        self.worker.log.flush()
        return os.fstat(self.worker.log.fileno()).st_size

    def stop_code(self, why: str) -> None:
        """Kill the running code, if any."""
        if self._command is not None:
            self._command.stop()
            log_line(self.worker.log, f"user code stopped ({why})")
        self._command = None
        self._waiting = None


def _limit(timeout: float | None, deadline: float | None) -> float | None:
    """Seconds this attempt may take: datum_timeout, or less when job_timeout comes first."""
    if deadline is None:
        return timeout
    left = max(0.0, deadline - time.monotonic())
    return left if timeout is None else min(timeout, left)
