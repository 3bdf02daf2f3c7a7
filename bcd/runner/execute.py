"""Run one datum the way a Pachyderm worker does, in a local scratch folder.

Per attempt: a fresh `/pfs`-shaped folder with every input of the datum symlinked at
`<pfs>/<name>/<full matched path>` (not copied) and an empty `out/`; the command
(`transform.cmd`, exec'd without a shell) gets `transform.stdin` lines on stdin and the
worker's environment. An attempt fails on a non-zero exit code not listed in
`accept_return_code`, or when `datum_timeout` expires (the command's whole process group is
killed). After a failed attempt `err_cmd` runs; if it succeeds the datum is RECOVERED.
On success the outputs are made publishable: symlinks become copies of what they point
to (Pachyderm uploads the content), empty directories go, every file is fsynced.

Each command runs in its own process group (so a timeout kills all of it) behind a tiny
launcher that asks Linux to SIGKILL it if the runner dies, so a killed `bcd run` leaves
no datum running; `kill_leftovers` sweeps up anything those children started. Datums of
a batching pipeline go through `batch`, which shares the layout, environment, command
start and output checks defined here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bcd.runner.datums import Datum
from bcd.runner.spec import Transform
from bcd.runner.state import FAILED, PROCESSED, RECOVERED
from stages.io.pfs import fsync_path

# Runs as `python -S -c LAUNCHER <runner pid> cmd...`: die with the runner, then exec cmd.
_LAUNCHER = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(137)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as error:
    sys.stderr.write(f"bcd run: cannot run {sys.argv[2]!r}: {error.strerror}\\n")
    os._exit(127)
"""
_LOG_TAIL_LINES = 12


class RunningProcesses:
    """The datum commands running now, so that an interrupted run can kill them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._stopped = False

    def add(self, pid: int) -> None:
        with self._lock:
            self._groups.add(pid)
            stopped = self._stopped
        if stopped:
            kill_group(pid)  # started after stop(): it must not run

    def discard(self, pid: int) -> None:
        with self._lock:
            self._groups.discard(pid)

    @property
    def stopped(self) -> bool:
        """Whether the run is being interrupted: nothing more should start."""
        with self._lock:
            return self._stopped

    def stop(self) -> None:
        """Kill every running command, and any started from now on."""
        with self._lock:
            self._stopped = True
            groups = list(self._groups)
        for group in groups:
            kill_group(group)


def kill_group(group: int) -> None:
    """SIGKILL a command's whole process group, if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


@dataclass(frozen=True)
class DatumJob:
    """What every datum of one job shares."""

    transform: Transform
    tries: int
    timeout: float | None
    env: Mapping[str, str]
    overrides: Mapping[str, str]
    job_id: str
    deadline: float | None = None


@dataclass
class DatumResult:
    """How a datum ended. `out_dir` holds the files to publish when it was processed."""

    datum: str
    state: str
    reason: str = ""
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0
    log: Path | None = None
    log_tail: str = ""


class OutputError(Exception):
    """User code left something in /pfs/out that cannot be published."""


def user_code_env(
    job: DatumJob, datum: Datum | None, pfs: Path, extra: Mapping[str, str]
) -> dict[str, str]:
    """The command's environment: job env, Pachyderm's per-datum variables, then overrides.

    Without a datum it is the environment a batching command starts with (Pachyderm's
    `UserCodeEnv` without inputs): the datum's variables come with each datum.
    """
    env = dict(job.env)
    if datum is not None:
        for item in datum.inputs:
            env[item.name] = os.path.normpath(os.path.join(pfs, item.name, item.path.lstrip("/")))
            env[f"{item.name}_COMMIT"] = job.job_id
            if item.join_on:
                env[f"PACH_DATUM_{item.name}_JOIN_ON"] = item.join_on
            if item.group_by:
                env[f"PACH_DATUM_{item.name}_GROUP_BY"] = item.group_by
        env["PACH_DATUM_ID"] = datum.id
    env["PACH_JOB_ID"] = job.job_id
    env["PACH_OUTPUT_COMMIT_ID"] = job.job_id
    env["PFS_ROOT"] = str(pfs)
    env.update(extra)
    env.update(job.overrides)
    return env


def link_inputs(pfs: Path, datum: Datum) -> None:
    """Symlink each input at `<pfs>/<name>/<path>`; a linked directory covers its subtree."""
    ordered = sorted(datum.inputs, key=lambda item: (item.name, item.path.strip("/").split("/")))
    for item in ordered:
        parts = [part for part in item.path.strip("/").split("/") if part]
        link = pfs.joinpath(item.name, *parts)
        covered = any(
            parent.is_symlink() for parent in [pfs / item.name, *_between(pfs / item.name, link)]
        )
        if covered or os.path.lexists(link):
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(item.source.resolve(), link)


def _between(top: Path, link: Path) -> list[Path]:
    """The folders strictly between `top` and `link`."""
    return [parent for parent in link.parents if parent != top and top in parent.parents]


def run_datum(
    job: DatumJob,
    datum: Datum,
    scratch: Path,
    log_path: Path,
    processes: RunningProcesses,
    extra_env: Mapping[str, str] | None = None,
) -> DatumResult:
    """Run every attempt a datum is allowed until one succeeds; never raises for user errors."""
    start = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    recovered = False
    reason = ""
    attempt = 0
    with open(log_path, "wb") as log:
        for attempt in range(1, job.tries + 1):
            attempt_dir = scratch / f"attempt-{attempt}"
            pfs = attempt_dir / "pfs"
            (pfs / "out").mkdir(parents=True)
            link_inputs(pfs, datum)
            env = user_code_env(job, datum, pfs, extra_env or {})
            log_line(log, f"attempt {attempt}/{job.tries}: {' '.join(job.transform.cmd)}")
            reason = run_command(job.transform.cmd, job.transform.stdin, env, log, job, processes)
            if not reason:
                try:
                    files = finalize_outputs(pfs / "out")
                except OutputError as error:
                    reason = str(error)
                else:
                    return DatumResult(
                        datum.id,
                        PROCESSED,
                        out_dir=pfs / "out",
                        files=files,
                        attempts=attempt,
                        seconds=time.monotonic() - start,
                        log=log_path,
                    )
            log_line(log, f"attempt {attempt} failed: {reason}")
            if job.transform.err_cmd:
                log_line(log, f"err_cmd: {' '.join(job.transform.err_cmd)}")
                error_reason = run_command(
                    job.transform.err_cmd, job.transform.err_stdin, env, log, job, processes
                )
                recovered = recovered or not error_reason
            shutil.rmtree(attempt_dir, ignore_errors=True)
    return DatumResult(
        datum.id,
        RECOVERED if recovered else FAILED,
        reason=reason,
        attempts=attempt,
        seconds=time.monotonic() - start,
        log=log_path,
        log_tail=read_tail(log_path),
    )


def log_line(log: BinaryIO, text: str) -> None:
    """A line of the runner's own in a datum log, between the command's output."""
    log.write(f"=== bcd run: {text}\n".encode())
    log.flush()


def read_tail(path: Path, start: int = 0) -> str:
    """The last lines of a log, from byte `start` on."""
    with open(path, "rb") as log:
        log.seek(start)
        lines = log.read().decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def start_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: BinaryIO,
    processes: RunningProcesses,
    stdin: bool,
) -> subprocess.Popen[bytes]:
    """Start a command in its own process group, dying with the runner, output to `log`.

    `stdin`: whether it gets a pipe (for `transform.stdin`) rather than no input.
    """
    process = subprocess.Popen(
        [sys.executable, "-S", "-c", _LAUNCHER, str(os.getpid()), *argv],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
    )
    processes.add(process.pid)
    return process


def stdin_bytes(lines: Sequence[str] | None) -> bytes | None:
    """`transform.stdin` as Pachyderm feeds it: lines joined by newlines, one at the end."""
    return None if lines is None else ("\n".join(lines) + "\n").encode()


def exit_reason(code: int) -> str:
    """What an exit status says, for a failure message."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def run_command(
    argv: Sequence[str],
    stdin_lines: Sequence[str] | None,
    env: Mapping[str, str],
    log: BinaryIO,
    job: DatumJob,
    processes: RunningProcesses,
) -> str:
    """Run one command to completion; "" on success, else why it failed."""
    timeout = job.timeout
    if job.deadline is not None:
        left = job.deadline - time.monotonic()
        if left <= 0:
            return "job_timeout expired"
        timeout = left if timeout is None else min(timeout, left)
    stdin_data = stdin_bytes(stdin_lines)
    process = start_command(argv, env, log, processes, stdin=stdin_data is not None)
    try:
        process.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.wait()
        return f"timed out after {timeout:g}s (datum_timeout/job_timeout); process group killed"
    finally:
        # Whatever the command left running in the background goes with it.
        kill_group(process.pid)
        processes.discard(process.pid)
    code = process.returncode
    if code == 0 or code in job.transform.accept_return_code:
        return ""
    return exit_reason(code)


def finalize_outputs(out: Path) -> list[str]:
    """Make /pfs/out publishable; return its files as sorted posix paths relative to it."""
    for directory, dirnames, filenames in os.walk(out):
        for name in dirnames + filenames:
            path = Path(directory) / name
            if path.is_symlink():
                _replace_symlink(path, out)
    files = []
    for directory, _dirnames, filenames in os.walk(out, topdown=False):
        for name in filenames:
            path = Path(directory) / name
            if not path.is_file():
                raise OutputError(f"/pfs/out/{path.relative_to(out)} is not a regular file")
            fsync_path(path)
            files.append(path.relative_to(out).as_posix())
        if Path(directory) != out and not any(Path(directory).iterdir()):
            Path(directory).rmdir()
    return sorted(files)


def _replace_symlink(link: Path, out: Path) -> None:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError) as error:
        raise OutputError(f"/pfs/out/{link.relative_to(out)} is a broken symlink") from error
    link.unlink()
    if target.is_dir():
        shutil.copytree(target, link)
    else:
        shutil.copy2(target, link)


def kill_leftovers(scratch_root: Path) -> int:
    """SIGKILL processes a killed run left behind (their PFS_ROOT is under `scratch_root`)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    marker = f"PFS_ROOT={scratch_root.resolve()}/".encode()
    killed = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(marker) for item in environ.split(b"\0")):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                continue
    return killed
