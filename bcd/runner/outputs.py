"""A pipeline's output repo: which datum owns which file, and crash-safe publishing.

Pachyderm merges each successful datum's /pfs/out into the job's output commit and fails
the job when two datums write the same path, or one writes a file where another has a
directory. Here a datum's outputs are staged on the same file system and moved in with
renames, whole directories at a time where the repo does not have them yet (so a datum
that writes one new exam folder appears in a single atomic step). The state log announces
every publish before it starts; a publish cut short by a crash is finished on the next
start (`roll_forward`), and one that fails (disk full, read-only) is moved back out.

Test hook: `BCD_RUNNER_TEST_FAULT=<ENOSPC|EROFS|SIGKILL>[:N]` makes the publish raise that
OSError (or kill the runner) just before its (N+1)-th rename in this run (N defaults to 0).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

FAULT_ENV = "BCD_RUNNER_TEST_FAULT"


class MergeFault:
    """The test hook above; inert unless the variable is set."""

    def __init__(self, setting: str | None):
        self.kind: str | None = None
        self.renames_left = 0
        if setting:
            kind, _, count = setting.partition(":")
            if kind not in ("ENOSPC", "EROFS", "SIGKILL"):
                raise ValueError(f"{FAULT_ENV}={setting!r}: use ENOSPC, EROFS or SIGKILL[:N]")
            self.kind = kind
            self.renames_left = int(count or 0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MergeFault:
        return cls(environ.get(FAULT_ENV))

    def before_rename(self) -> None:
        if self.kind is None:
            return
        if self.renames_left > 0:
            self.renames_left -= 1
            return
        if self.kind == "SIGKILL":
            os.kill(os.getpid(), signal.SIGKILL)
        code = getattr(errno, self.kind)
        raise OSError(code, f"{os.strerror(code)} ({FAULT_ENV})")


def _ancestors(path: str) -> list[str]:
    return [str(parent) for parent in PurePosixPath(path).parents if str(parent) != "."]


class OutputRepo:
    """The files of `<out>/<pipeline>/` and the datum that owns each one."""

    def __init__(self, root: Path, owners: Mapping[str, str], fault: MergeFault | None = None):
        self.root = root
        self.fault = fault or MergeFault(None)
        self._files: dict[str, str] = {}
        self._dirs: dict[str, set[str]] = {}
        for path, datum in owners.items():
            self._own(datum, [path])

    def _own(self, datum: str, files: Iterable[str]) -> None:
        for path in files:
            self._files[path] = datum
            for parent in _ancestors(path):
                self._dirs.setdefault(parent, set()).add(datum)

    def _disown(self, datum: str, files: Iterable[str]) -> None:
        for path in files:
            self._files.pop(path, None)
            for parent in _ancestors(path):
                owners = self._dirs.get(parent)
                if owners is not None:
                    owners.discard(datum)
                    if not owners:
                        del self._dirs[parent]

    def conflict(self, datum: str, files: Iterable[str]) -> str | None:
        """Why `datum`'s files cannot join the repo (Pachyderm's validator), or None."""
        for path in files:
            if path in self._files:
                return (
                    f"duplicate path output by different datums: /{path} "
                    f"(datums {self._files[path]} and {datum})"
                )
            if path in self._dirs:
                other = sorted(self._dirs[path])[0]
                return (
                    f"/{path} is a file in datum {datum} but a directory in datum {other} "
                    "(file/directory collision between datums)"
                )
            for parent in _ancestors(path):
                if parent in self._files:
                    return (
                        f"/{parent} is a file in datum {self._files[parent]} but a directory "
                        f"in datum {datum} (file/directory collision between datums)"
                    )
        return None

    def publish(self, datum: str, staged: Path, files: list[str]) -> None:
        """Move a datum's staged outputs in; on any error move back what was moved."""
        self.root.mkdir(parents=True, exist_ok=True)
        moves = list(self._planned_moves(staged, self.root))
        done: list[tuple[Path, Path]] = []
        try:
            for source, target in moves:
                self.fault.before_rename()
                os.replace(source, target)
                done.append((source, target))
        except BaseException:
            for source, target in reversed(done):
                os.replace(target, source)
            raise
        self._own(datum, files)

    def _planned_moves(self, staged: Path, target: Path) -> Iterator[tuple[Path, Path]]:
        for entry in sorted(staged.iterdir()):
            destination = target / entry.name
            if (
                entry.is_dir()
                and not entry.is_symlink()
                and destination.is_dir()
                and not destination.is_symlink()
            ):
                yield from self._planned_moves(entry, destination)
            else:
                yield entry, destination

    def remove(self, datum: str, files: list[str]) -> None:
        """Delete a datum's output files and the directories they leave empty."""
        for path in files:
            (self.root / path).unlink(missing_ok=True)
        self._prune({str(PurePosixPath(path).parent) for path in files})
        self._disown(datum, files)

    def _prune(self, directories: Iterable[str]) -> None:
        candidates = {d for path in directories for d in [path, *_ancestors(path)] if d != "."}
        for relative in sorted(candidates, key=lambda d: d.count("/"), reverse=True):
            try:
                (self.root / relative).rmdir()
            except OSError:
                continue  # not empty, or already gone

    def roll_forward(self, staged: Path, files: list[str]) -> None:
        """Finish a publish a crash cut short: move whatever is still staged."""
        for path in files:
            source = staged / path
            if os.path.lexists(source):
                target = self.root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)

    def missing(self, files: list[str]) -> bool:
        """Whether any of these owned files is gone from the repo."""
        return any(not (self.root / path).is_file() for path in files)

    def sweep(self) -> list[str]:
        """Delete files no datum owns (left by a crash) and empty directories."""
        if not self.root.is_dir():
            return []
        removed = []
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                full = Path(directory) / name
                relative = full.relative_to(self.root).as_posix()
                if relative not in self._files:
                    full.unlink()
                    removed.append(relative)
        for directory, _dirs, _names in sorted(os.walk(self.root), reverse=True):
            if Path(directory) != self.root:
                try:
                    os.rmdir(directory)
                except OSError:
                    continue
        return removed
