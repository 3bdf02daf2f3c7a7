"""Exam ids: pseudonymous by default, so no patient identifier reaches the exam format."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from stages.core.errors import DataError
from stages.core.exam import check_name
from stages.io.pfs import atomic_write_bytes

SALT_ENV = "BCD_ID_SALT"
PREFIX = "ex-"
HEX_DIGITS = 12


def salt_file(dst: Path) -> Path:
    """Where a generated salt is kept: beside DST, never inside it."""
    return dst.with_name(f"{dst.name}.salt")


def resolve_salt(cli_salt: str | None, dst: Path) -> tuple[str, str]:
    """(salt, where it came from): --salt, else $BCD_ID_SALT, else the file beside DST.

    A salt generated once is kept in that file so that re-ingesting gives the same ids.
    """
    if cli_salt:
        return cli_salt, "--salt"
    if os.environ.get(SALT_ENV):
        return os.environ[SALT_ENV], f"${SALT_ENV}"
    path = salt_file(dst)
    if path.is_file():
        return path.read_text(encoding="utf-8").strip(), str(path)
    salt = secrets.token_hex(16)
    atomic_write_bytes(path, f"{salt}\n".encode())
    path.chmod(0o600)
    return salt, f"{path} (new)"


def pseudonym(salt: str, key: str) -> str:
    """'ex-' + the first 12 hex digits of SHA-256(salt, NUL, key)."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).hexdigest()
    return f"{PREFIX}{digest[:HEX_DIGITS]}"


def kept_id(key: str) -> str:
    """The grouping key itself as an exam id (--keep-ids): characters outside
    [A-Za-z0-9._-] become '_'; a key that leaves nothing usable is refused."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")
    return check_name(name, "exam id (from --keep-ids)", exam=key)


def assign_ids(keys: Iterable[str], *, salt: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Exam id per grouping key, and the keys refused (with the reason).

    With a salt ids are pseudonyms; without one (--keep-ids) they are the sanitised keys.
    Two keys that would share an id are both refused rather than merged.
    """
    ids: dict[str, str] = {}
    refused: dict[str, str] = {}
    for key in keys:
        try:
            ids[key] = pseudonym(salt, key) if salt is not None else kept_id(key)
        except DataError as error:
            refused[key] = error.reason
    by_id: dict[str, list[str]] = {}
    for key, exam_id in ids.items():
        by_id.setdefault(exam_id, []).append(key)
    for exam_id, keys_with_id in by_id.items():
        if len(keys_with_id) > 1:
            for key in keys_with_id:
                del ids[key]
                refused[key] = (
                    f"{len(keys_with_id)} exams would get the same id {exam_id!r}; "
                    "rename them or drop --keep-ids"
                )
    return ids, refused
