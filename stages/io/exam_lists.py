"""NYU exam lists: the reference's pickled list of exam dicts, read without running code.

Unpickling runs whatever the file asks for, so an exam list is read in three steps. First
its opcodes are walked without building anything (pickletools), and the file is refused
unless it is made only of what a list of exam dicts needs: lists, dicts, tuples, strings,
numbers, booleans, None and references to them; no global (no class or function) is ever
loaded, dict keys are plain values, sizes, numbers and references are bounded. Then it is
unpickled by an unpickler that loads no global either. Last, the value is walked counting
every reference, so that a few bytes of references to references ("billion laughs") or a
deep nesting are refused before anything walks it recursively or writes it out. A hostile
file is refused by name, not executed, and cannot make the reader exhaust memory or stack.
`bcd ingest` (the NYU layout) and the stages (the Pachyderm example's per-exam pickle) both
read exam lists here.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path
from typing import Any

from stages.core.errors import DataError, brief, shown

# An exam list is a few hundred bytes per exam: these bounds are far above any real one.
MAX_EXAM_LIST_BYTES = 16 << 20
# Values, counting each reference again (a shared list is counted wherever it appears),
# and characters of strings counted the same way: what writing the list out would produce.
MAX_VALUES = 1_000_000
MAX_CHARACTERS = 16 << 20
# A genuine pickle takes two or three opcodes per value; this bounds the walk's time (a few
# seconds) on a file of opcodes that make nothing (MARK, POP_MARK, ...).
MAX_OPCODES = 4 * MAX_VALUES
# Exam list, exam dict, per-view dict, list, point: a handful of levels.
MAX_DEPTH = 32
# Numbers in an exam list are pixel coordinates; bigger ones cannot be written as JSON.
MAX_INTEGER_BITS = 64
# What a corrupt or hostile file makes reading raise: each is that file's DataError. All of
# them come from parsing the file's bytes in memory (the file was read before), not faults.
READ_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, OverflowError)

_MARK, _LIST, _DICT, _TUPLE, _VALUE = "mark", "list", "dict", "tuple", "value"
_VALUE_OPCODES = frozenset(
    (
        "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG",
        "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING",
        "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    )
)  # fmt: skip
_STRING_OPCODES = frozenset(("UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"))
_EMPTY_CONTAINERS = {"EMPTY_LIST": _LIST, "EMPTY_DICT": _DICT, "EMPTY_TUPLE": _TUPLE}
_MEMO_PUTS = frozenset(("PUT", "BINPUT", "LONG_BINPUT"))
_MEMO_GETS = frozenset(("GET", "BINGET", "LONG_BINGET"))
_FIXED_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def refuse_global(module: str, name: str) -> pickle.UnpicklingError:
    """The refusal of a global (a class or function) named in an exam list."""
    return pickle.UnpicklingError(
        f"refused to load {shown(module)[1:-1]}.{shown(name)[1:-1]}: an exam list holds only "
        "lists, dicts, strings and numbers, and loading anything else could run code"
    )


class ExamListUnpickler(pickle.Unpickler):
    """Unpickles plain data only: every global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        raise refuse_global(module, name)


class _Scan:
    """The unpickler's stack and memo, simulated with the kind of each value only."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.memo: dict[int, tuple[str, str | None]] = {}
        self.created = 0
        self.strings: list[str | None] = []  # the string values on the stack (None: other)

    def push(self, kind: str, string: str | None = None, *, created: bool = True) -> None:
        self.created += created
        if self.created > MAX_VALUES:
            raise pickle.UnpicklingError(f"more than {MAX_VALUES:,} values: not an exam list")
        self.stack.append(kind)
        self.strings.append(string)

    def peek(self, where: str) -> tuple[str, str | None]:
        """The kind and string value of the value on top."""
        if not self.stack or self.stack[-1] == _MARK:
            raise pickle.UnpicklingError(f"corrupt pickle: {where} finds no value to take")
        return self.stack[-1], self.strings[-1]

    def pop(self, where: str) -> str:
        kind, _ = self.peek(where)
        del self.stack[-1], self.strings[-1]
        return kind

    def pop_to_mark(self, where: str) -> list[str]:
        if _MARK not in self.stack:
            raise pickle.UnpicklingError(f"corrupt pickle: {where} finds no mark")
        start = len(self.stack) - self.stack[::-1].index(_MARK) - 1
        items = self.stack[start + 1 :]
        del self.stack[start:], self.strings[start:]
        return items

    def top(self, kind: str, where: str) -> None:
        if not self.stack or self.stack[-1] != kind:
            raise pickle.UnpicklingError(f"corrupt pickle: {where} needs a {kind} under it")


def check_opcodes(data: bytes) -> None:
    """Refuse a pickle that is not made only of what an exam list needs (see the module).

    Walks the opcodes with pickletools, which builds nothing; UnpicklingError or
    ValueError naming the first offending opcode and its byte.
    """
    scan = _Scan()
    # The unpickler reads a frame ahead whole and must find whole opcodes in it (the Python
    # one checks this; the C one would lose its place): frames may not nest, and no opcode
    # may run past its frame's end.
    frame_end = previous = 0
    for count, (opcode, argument, offset) in enumerate(pickletools.genops(data)):
        if count >= MAX_OPCODES:
            raise pickle.UnpicklingError(f"more than {MAX_OPCODES:,} opcodes: not an exam list")
        position = offset or 0  # always known here: genops reads from memory
        name, where = opcode.name, f"{opcode.name} at byte {position}"
        if previous < frame_end < position:
            raise pickle.UnpicklingError(
                f"corrupt pickle: the opcode at byte {previous} runs past the end of its "
                f"frame, at byte {frame_end}"
            )
        previous = position
        if name in _VALUE_OPCODES:
            if isinstance(argument, int) and argument.bit_length() > MAX_INTEGER_BITS:
                raise pickle.UnpicklingError(
                    f"a {argument.bit_length():,}-bit number at byte {position}: an exam "
                    f"list's numbers fit in {MAX_INTEGER_BITS} bits"
                )
            string = argument if name in _STRING_OPCODES else None
            scan.push(_VALUE, string if isinstance(string, str) else None)
        elif name in _EMPTY_CONTAINERS:
            scan.push(_EMPTY_CONTAINERS[name])
        elif name == "MARK":
            scan.push(_MARK, created=False)
        elif name in ("LIST", "TUPLE"):
            scan.pop_to_mark(where)
            scan.push(_LIST if name == "LIST" else _TUPLE)
        elif name == "DICT":
            _check_keys(scan.pop_to_mark(where), where)
            scan.push(_DICT)
        elif name in _FIXED_TUPLES:
            for _ in range(_FIXED_TUPLES[name]):
                scan.pop(where)
            scan.push(_TUPLE)
        elif name == "APPEND":
            scan.pop(where)
            scan.top(_LIST, where)
        elif name == "APPENDS":
            scan.pop_to_mark(where)
            scan.top(_LIST, where)
        elif name in ("SETITEM", "SETITEMS"):
            if name == "SETITEM":
                scan.pop(where)
                _check_keys([scan.pop(where), _VALUE], where)
            else:
                _check_keys(scan.pop_to_mark(where), where)
            scan.top(_DICT, where)
        elif name in ("POP", "STOP"):
            scan.pop(where)
        elif name == "POP_MARK":
            scan.pop_to_mark(where)
        elif name == "DUP":
            scan.push(*scan.peek(where), created=False)
        elif name in _MEMO_PUTS or name == "MEMOIZE":
            index = len(scan.memo) if name == "MEMOIZE" else argument
            # A genuine pickle numbers its memo from 0, one entry per object: a larger
            # index is corruption that would make the unpickler allocate up to it.
            if not isinstance(index, int) or not 0 <= index <= scan.created:
                raise pickle.UnpicklingError(
                    f"corrupt pickle: memo index {shown(index)} at byte {position} is "
                    f"beyond the {scan.created:,} values made so far"
                )
            scan.memo[index] = scan.peek(where)
        elif name in _MEMO_GETS:
            if argument not in scan.memo:
                raise pickle.UnpicklingError(
                    f"corrupt pickle: {where} refers to memo index {shown(argument)}, never stored"
                )
            scan.push(*scan.memo[argument], created=False)
        elif name == "GLOBAL":
            module, _, global_name = str(argument).partition(" ")
            raise refuse_global(module, global_name)
        elif name == "STACK_GLOBAL":
            strings = scan.strings[-2:]
            if len(strings) == 2 and isinstance(strings[0], str) and isinstance(strings[1], str):
                raise refuse_global(strings[0], strings[1])
            raise pickle.UnpicklingError(f"{where}: a global named by something not a string")
        elif name == "FRAME":
            if position < frame_end:
                raise pickle.UnpicklingError(
                    f"corrupt pickle: {where} begins inside the frame ending at byte {frame_end}"
                )
            start = position + 1 + 8  # the opcode and its 8-byte length
            if not isinstance(argument, int) or argument > len(data) - start:
                raise pickle.UnpicklingError(
                    f"corrupt pickle: {where} claims {shown(argument)} bytes, past the "
                    f"file's {len(data):,}"
                )
            frame_end = start + argument
        elif name != "PROTO":
            raise pickle.UnpicklingError(
                f"{where}: an exam list is made of lists, dicts, strings and numbers only, "
                f"never of what {name} makes"
            )


def _check_keys(items: list[str], where: str) -> None:
    """Keys (at even places of `items`) are plain values: hashing them cannot recurse."""
    if len(items) % 2:
        raise pickle.UnpicklingError(f"corrupt pickle: {where} finds a key without a value")
    if any(kind != _VALUE for kind in items[::2]):
        raise pickle.UnpicklingError(
            f"{where}: a dict key that is a list, dict or tuple: not an exam list"
        )


def check_extent(value: Any) -> None:
    """Refuse a value nested deeper than MAX_DEPTH or larger than MAX_VALUES values and
    MAX_CHARACTERS characters, counting each reference again; iterative, so any shape works.
    """
    values = characters = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        values += 1
        if values > MAX_VALUES:
            raise pickle.UnpicklingError(
                f"holds more than {MAX_VALUES:,} values, counting each reference (values "
                "referring to each other over and over?): not an exam list"
            )
        if depth > MAX_DEPTH:
            raise pickle.UnpicklingError(
                f"nested more than {MAX_DEPTH} levels deep: not an exam list"
            )
        if isinstance(item, str):
            characters += len(item)
            if characters > MAX_CHARACTERS:
                raise pickle.UnpicklingError(
                    f"holds more than {MAX_CHARACTERS:,} characters of strings, counting each "
                    "reference: not an exam list"
                )
        elif isinstance(item, dict):
            pending.extend((child, depth + 1) for pair in item.items() for child in pair)
        elif isinstance(item, list | tuple):
            pending.extend((child, depth + 1) for child in item)


def load_exam_list(path: Path) -> list[Any]:
    """The pickled exam list, read with the checks above; DataError if refused.

    An OSError reading the file propagates: a fault to retry, not the file's content.
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_EXAM_LIST_BYTES + 1)
    try:
        if len(data) > MAX_EXAM_LIST_BYTES:
            raise pickle.UnpicklingError(
                f"larger than {MAX_EXAM_LIST_BYTES:,} bytes: not an exam list"
            )
        check_opcodes(data)
        exams = ExamListUnpickler(io.BytesIO(data)).load()
        check_extent(exams)
    except READ_ERRORS as error:
        raise DataError(f"cannot read the exam list: {brief(error)}", file=path.name) from error
    if not isinstance(exams, list):
        raise DataError(
            f"the exam list must be a list of exam dicts, not {type(exams).__name__}",
            file=path.name,
        )
    return exams
