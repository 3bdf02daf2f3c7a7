"""The runner's own errors: each one is a reason the run could not start or had to stop."""

from __future__ import annotations


class RunnerError(Exception):
    """A run could not start: bad spec, missing repo, unusable folder (exit code 2)."""


class SpecError(RunnerError):
    """A pipeline spec that Pachyderm would reject, or that the local runner cannot play."""


class GlobError(SpecError):
    """A glob pattern or a join_on/group_by template that ohmyglob would reject."""


class LockBusy(RunnerError):
    """Another `bcd run` holds the output folder."""


class StorageError(RunnerError):
    """The output folder cannot be written (disk full, read-only): the run stops cleanly."""
