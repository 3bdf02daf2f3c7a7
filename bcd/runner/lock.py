"""One `bcd run` per output folder: an flock on `<out>/.bcd/lock`.

The kernel drops an flock when its holder dies, so a killed run never blocks the next
one. The holder writes who it is into the file, so a refused run can say who holds it.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bcd.runner.errors import LockBusy

LOCK_FILE = "lock"


def holder_description() -> str:
    """pid, host, start time and command line of this process."""
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    command = " ".join(sys.argv) or "python"
    return f"pid {os.getpid()} on {socket.gethostname()} since {started}: {command}"


@contextmanager
def run_lock(state_dir: Path) -> Iterator[Path]:
    """Hold the lock of the output folder whose state lives in `state_dir`, or refuse now."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(path).read_text(encoding="utf-8", errors="replace").strip()
            raise LockBusy(
                f"another bcd run is using {state_dir.parent} ({holder or 'holder unknown'}); "
                f"wait for it to finish, or use another --out (lock: {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder_description() + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)
