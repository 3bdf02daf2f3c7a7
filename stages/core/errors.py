"""The one error type for bad input: it becomes an exam's error record, never a crash."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data for one exam: reported as that exam's error record.

    `file` is the offending file relative to the exam (or the exam directory itself),
    `reason` says what is wrong and what to do about it.
    """

    def __init__(self, reason: str, *, exam: str | None = None, file: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.exam = exam
        self.file = file

    def __str__(self) -> str:
        where = " ".join(part for part in (self.exam, self.file) if part)
        return f"{where}: {self.reason}" if where else self.reason
