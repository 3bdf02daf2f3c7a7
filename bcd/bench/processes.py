"""Run one command in a fresh child process and measure its wall time and peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.nets.runtime import OPENVINO_CACHE_ENV

# ru_maxrss is in KiB on Linux, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
# A process's peak RSS survives exec: a child forked from the bench (torch loaded, ~1 GB)
# would report the bench's own peak. So a bare interpreter (python -S, ~10 MB) starts the
# command and reports the command's figure: argv = [rss file, command...].
_WAITER = (
    "import os, sys\n"
    "pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status) % 256)\n"
)


class CommandFailed(RuntimeError):
    """A measured command exited non-zero (its log names why)."""


@dataclass(frozen=True)
class Measured:
    """One finished command: wall seconds and the peak resident memory of its process tree."""

    seconds: float
    peak_rss_mib: float


def run_measured(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> Measured:
    """Run `argv` with output appended to `log`; CommandFailed on a non-zero exit.

    The peak RSS comes from wait4() on the command's own process, so each measured command
    gets its own figure (the largest of it and the descendants it waited for).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_name(f".{log.name}.maxrss")
    with open(log, "ab") as output:
        output.write(f"+ {' '.join(argv)}\n".encode())
        output.flush()
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", _WAITER, str(rss_file), *argv],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        timer = None
        if timeout_s is not None:
            timer = threading.Timer(timeout_s, os.killpg, (child.pid, signal.SIGKILL))
            timer.start()
        try:
            returncode = child.wait()
        finally:
            if timer is not None:
                timer.cancel()
        seconds = time.perf_counter() - start
    if returncode != 0:
        raise CommandFailed(f"exit {returncode}: {' '.join(argv)} (see {log})")
    maxrss = int(rss_file.read_text())
    rss_file.unlink()
    return Measured(seconds, maxrss * _MAXRSS_UNIT / 2**20)


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment with every thread-count knob the stages and torch read set to `threads`,
    and no OpenVINO conversion cache: each process converts its networks, as a fresh worker's
    first datum does (the part that measures the cache names a fresh folder itself)."""
    env = dict(os.environ if base is None else base)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "BCD_TORCH_THREADS"):
        env[name] = str(threads)
    env[OPENVINO_CACHE_ENV] = "off"
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env
