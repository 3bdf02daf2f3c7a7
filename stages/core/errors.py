"""The one error type for bad input: it becomes an exam's error record, never a crash."""

from __future__ import annotations

import reprlib
from typing import Any


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


class _BoundedRepr(reprlib.Repr):
    """reprlib's abbreviations, and big integers described instead of converted."""

    def repr_int(self, x: int, level: int) -> str:
        # str() of a huge int is refused by Python (and slow), so describe it.
        if x.bit_length() > 64:
            return f"<{x.bit_length():,}-bit integer>"
        return super().repr_int(x, level)


_SHOWN = _BoundedRepr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel = 3


def shown(value: Any) -> str:
    """A short repr of a value from untrusted input, for messages: at most a line, however
    large, deep or self-referencing the value is.
    """
    return _SHOWN.repr(value)


# The most of a library's error message that goes into ours.
_BRIEF_CHARACTERS = 200


def brief(error: BaseException | str) -> str:
    """A library error's message cut to a line: some quote the whole bad input."""
    text = str(error)
    return text if len(text) <= _BRIEF_CHARACTERS else text[:_BRIEF_CHARACTERS] + "..."
