"""NYU exam lists: the reference's pickled list of exam dicts, read without running code.

Unpickling runs whatever the file asks for, so an exam list is read with an unpickler
that refuses every class or function except the few builtin containers an exam list is
made of: a hostile file is refused by name, not executed. `bcd ingest` (the NYU layout)
and the stages (the Pachyderm example's per-exam pickle) both read exam lists here.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path
from typing import Any

from stages.core.errors import DataError

# The opcodes that store an object in the unpickler's memo under an index the file gives.
MEMO_PUTS = frozenset(("PUT", "BINPUT", "LONG_BINPUT"))
# What an unreadable, corrupt or hostile file makes reading raise: each is that file's DataError.
READ_ERRORS = (
    OSError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    OverflowError,
)
# All an exam list needs; protocol 2+ builds dicts, lists and strings without any of them.
ALLOWED_GLOBALS = frozenset(
    ("builtins", name) for name in ("dict", "list", "str", "int", "float", "bool", "tuple")
)


class ExamListUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: an exam list holds only lists, dicts and "
            "strings, and loading anything else could run code"
        )


def check_memo_indices(data: bytes) -> None:
    """Refuse a pickle that stores an object under a memo index beyond its own length.

    The unpickler grows its memo to the largest index it is given before storing, so one
    corrupt byte could make it ask for gigabytes; a genuine pickle numbers its memo from
    0, one entry per object, so its indices stay below its length. Walking the opcodes
    runs nothing.
    """
    for opcode, argument, position in pickletools.genops(data):
        if opcode.name in MEMO_PUTS and isinstance(argument, int) and argument > len(data):
            raise pickle.UnpicklingError(
                f"corrupt pickle: memo index {argument} at byte {position} is beyond the "
                f"file's {len(data)} bytes"
            )


def load_exam_list(path: Path) -> list[Any]:
    """The pickled exam list, read with the restricted unpickler; DataError if refused."""
    try:
        data = path.read_bytes()
        check_memo_indices(data)
        exams = ExamListUnpickler(io.BytesIO(data)).load()
    except READ_ERRORS as error:
        raise DataError(f"cannot read the exam list: {error}", file=path.name) from error
    if not isinstance(exams, list):
        raise DataError(
            f"the exam list must be a list of exam dicts, not {type(exams).__name__}",
            file=path.name,
        )
    return exams
