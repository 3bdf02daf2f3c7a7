"""What the fuzz harnesses share: turning the fuzzer's bytes into the files a boundary reads.

Imported by the harnesses in this folder (never by one another); it imports nothing of
the project, so that `atheris.instrument_imports()` in a harness sees the project's
modules imported there for the first time.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

# libFuzzer ends the process with C exit(), past Python's atexit handlers: a run's
# scratch outlives it unless TMPDIR names a folder the caller removes (the smoke test's
# tmp_path, `make fuzz`'s output folder). The handler cleans up when Python exits itself.
_SCRATCH = Path(tempfile.mkdtemp(prefix="bcd-fuzz-"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


def scratch_dir(name: str) -> Path:
    """A folder of this process's scratch space, emptied for each input."""
    folder = _SCRATCH / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def input_file(data: bytes, name: str) -> Path:
    """`data` written as the file `name` in this process's scratch space (overwritten)."""
    path = _SCRATCH / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
