"""A local directory seen as one commit of a Pachyderm repo: its entries and content hashes.

Pachyderm 2.x lists every file and, implicitly, every directory that holds a file, each
directory with a trailing '/' ("/dir/"), and the root as "/" when the repo holds any
file; there are no empty directories. A file's hash is BLAKE2b-256 of its content; a
directory's is BLAKE2b-256 over its direct children's hashes in path order, child names
not included (as Pachyderm does: renaming a file inside a directory datum keeps the hash).
Symbolic links are followed; sockets, fifos and devices are not repo content.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def _blake2b() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=32)


def _children(directory: Path) -> list[tuple[str, Path, bool]]:
    """(Pachyderm path suffix, local path, is_dir) of the entries under `directory`."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir():
                found.append((entry.name + "/", path, True))
            elif entry.is_file():
                found.append((entry.name, path, False))
    return sorted(found)


class RepoFiles:
    """Entries and hashes of one repo directory, each computed once per run."""

    def __init__(self, root: Path):
        self.root = root
        self._hashes: dict[Path, bytes | None] = {}

    def entries(self) -> list[str]:
        """Every file and non-empty directory as a Pachyderm path, in path order."""
        found: list[str] = []
        if self.root.is_dir():
            self._walk(self.root, "/", found)
        return found

    def _walk(self, directory: Path, prefix: str, found: list[str]) -> bool:
        below: list[str] = []
        for suffix, path, is_dir in _children(directory):
            if is_dir:
                self._walk(path, prefix + suffix, below)
            else:
                below.append(prefix + suffix)
        if below:
            found.append(prefix)
            found.extend(below)
        return bool(below)

    def local_path(self, pfs_path: str) -> Path:
        """Where a Pachyderm path ("/a/b", "/a/", "/") lives in the local directory."""
        relative = pfs_path.strip("/")
        return self.root / relative if relative else self.root

    def content_hash(self, pfs_path: str) -> bytes:
        """The content hash of a file or directory entry of this repo."""
        digest = self._hash(self.local_path(pfs_path))
        if digest is None:
            raise FileNotFoundError(f"{self.local_path(pfs_path)} has no files")
        return digest

    def _hash(self, path: Path) -> bytes | None:
        if path not in self._hashes:
            self._hashes[path] = self._hash_dir(path) if path.is_dir() else _hash_file(path)
        return self._hashes[path]

    def _hash_dir(self, directory: Path) -> bytes | None:
        digest = _blake2b()
        any_content = False
        for _suffix, path, _is_dir in _children(directory):
            child = self._hash(path)
            if child is not None:
                digest.update(child)
                any_content = True
        return digest.digest() if any_content else None


def _hash_file(path: Path) -> bytes:
    digest = _blake2b()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()
