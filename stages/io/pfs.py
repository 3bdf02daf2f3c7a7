"""The /pfs contract: where inputs are, and how outputs are written without half-files.

A stage reads `<pfs>/<input>/<exam>/...` and writes `<pfs>/out/<exam>/...`. Each exam's
outputs are staged in a hidden directory under `out/` and renamed into place only when
the exam is complete, so a killed stage never leaves a partial exam behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ERROR_RECORD = "error.json"
STAGING_PREFIX = ".bcd-staging-"
# An exam's JSON files are a few KB and a few levels deep: anything beyond these bounds is
# refused before parsing, so that a hostile file can exhaust neither memory nor the stack of
# the parser and of whatever walks the parsed value.
MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def resolve_pfs_root(cli_value: str | None) -> Path:
    """`--pfs DIR` if given, else $PFS_ROOT, else /pfs."""
    return Path(cli_value) if cli_value else pfs_root_of(os.environ)


def pfs_root_of(environment: Mapping[str, str]) -> Path:
    """The root an environment names: $PFS_ROOT (the local runner's), else /pfs (a cluster's)."""
    return Path(environment.get("PFS_ROOT") or "/pfs")


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes renames in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a fsynced temp file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide outputs from other users
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_at_most(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it holds more than `limit` (never reading past it)."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    return None if len(data) > limit else data


def read_json(path: Path) -> Any:
    """Parse a JSON file; ValueError when it is not UTF-8 JSON within the size and depth
    bounds (callers turn it into an error record). OSError propagates: a fault, not data.
    """
    data = read_at_most(path, MAX_JSON_BYTES)
    if data is None:
        raise ValueError(f"larger than {MAX_JSON_BYTES:,} bytes, far more than an exam's JSON")
    text = data.decode("utf-8")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested {depth:,} levels deep, more than the {MAX_JSON_DEPTH} allowed")
    return json.loads(text)


def json_depth(text: str) -> int:
    """How deeply the brackets of a JSON text nest (brackets inside strings not counted).

    Exact for valid JSON; for invalid JSON at least the depth a parser would reach.
    """
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def exam_dirs(input_root: Path) -> list[Path]:
    """The exam directories directly under an input, sorted by name.

    With glob "/*" a datum holds one exam; with "/" or run by hand it holds all of them.
    Hidden entries (staging leftovers, dot-files) are not exams.
    """
    if not input_root.is_dir():
        return []
    return sorted(p for p in input_root.iterdir() if p.is_dir() and not p.name.startswith("."))


def upstream_error(exam_dir: Path) -> dict[str, Any] | None:
    """The error record an upstream stage left for this exam, if any.

    A damaged record still marks the exam as failed, with a reason saying so.
    """
    path = exam_dir / ERROR_RECORD
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except ValueError as error:
        record = f"unreadable error record ({error})"
    if isinstance(record, dict):
        return record
    reason = record if isinstance(record, str) else "error record is not a JSON object"
    return {"exam": exam_dir.name, "stage": None, "file": ERROR_RECORD, "reason": reason}


def remove_stale_staging(out_root: Path) -> None:
    """Delete staging directories left behind by a killed earlier run."""
    if out_root.is_dir():
        for leftover in out_root.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def exam_output(out_root: Path, exam_id: str) -> Iterator[Path]:
    """Stage one exam's outputs; publish them as `out_root/exam_id` only on success.

    Whatever was there before (a previous run's outputs or error record) is replaced
    whole, so an exam directory always holds one run's complete outputs.
    """
    out_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_root, prefix=f"{STAGING_PREFIX}{exam_id}-"))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the published exam from other users
    try:
        yield staging
        _publish(staging, out_root / exam_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, final: Path) -> None:
    for path in staging.rglob("*"):
        if path.is_file():
            fsync_path(path)
    if final.exists():
        retired = final.with_name(f"{STAGING_PREFIX}{final.name}-old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, final)
