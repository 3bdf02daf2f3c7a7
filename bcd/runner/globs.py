"""Pachyderm's glob patterns (the ohmyglob library), ported to Python.

Pachyderm cleans a pfs glob (`CleanPath`), compiles it with '/' as the separator into an
anchored regex and matches it against every file and every directory of the commit, with
a directory's trailing '/' removed; the root "/" matches only the glob "/". Captures fill
`join_on` / `group_by` templates (`$1`, `${1}`, `$$`). The lexer and parser below follow
ohmyglob step by step, quirks included, so a pattern selects locally exactly what it
selects on a cluster.

ohmyglob hands its regex, negative lookahead and all, to a backtracking engine, where a
9-character glob such as `/*(*!(x))` takes exponential time on an ordinary file name. Here
the tree is compiled to a small program that matches in the same priority order (so the
same captures) but never explores a state twice (`_Matcher`): polynomial in glob and path.
Repetitions follow that engine's rule (.NET's, ported by regexp2): an iteration that
matched nothing ends the loop.
"""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from bcd.runner.errors import GlobError

# POSIX classes as ohmyglob spells them out inside `[...]` (":graph:" really ends in "]").
_POSIX_CLASSES = {
    ":alnum:": "0-9A-Za-z",
    ":alpha:": "A-Za-z",
    ":ascii:": "\x00-\x7f",
    ":blank:": "\t ",
    ":cntrl:": "\x00-\x1f\x7f",
    ":digit:": "0-9",
    ":graph:": "!-~]",
    ":lower:": "a-z",
    ":print:": " -~",
    ":punct:": "!-/:-@[-`{-~",
    ":space:": "\t\n\v\f\r ",
    ":upper:": "A-Z",
    ":word:": "0-9A-Za-z_",
    ":xdigit:": "0-9A-Fa-f",
}

_BASIC_BREAKERS = "?*[{("
_EXTENDED_BREAKERS = _BASIC_BREAKERS + "@!^+"
_CAPTURE_BREAKERS = _EXTENDED_BREAKERS + ")|"
_TERMS_BREAKERS = _EXTENDED_BREAKERS + "},"
# Far beyond any real glob (Pachyderm's are a few dozen characters): refused, not compiled.
MAX_GLOB_LENGTH = 1000
MAX_GLOB_NESTING = 64  # tree levels: a group is two (the group and its alternative)
# Matching is polynomial, but a huge glob on a huge path still adds up: past this many
# steps (seconds; a real glob on a real path takes a few thousand) it is refused.
MAX_MATCH_STEPS = 1_000_000


def clean_path(path: str) -> str:
    """Pachyderm's CleanPath: "" -> "/", "abc/" -> "/abc", "a/../b" -> "/b"."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned == ".":
        return "/"
    return "/" + cleaned.strip("/")


@dataclass
class _Token:
    kind: str
    raw: str = ""


class _Lexer:
    """ohmyglob's lexer: the token stream, with its context-dependent breakers."""

    def __init__(self, source: str):
        self.data = source
        self.pos = 0
        self.last_size = 0
        self.tokens: list[_Token] = []
        self.terms_level = 0
        self.capture_level = 0

    def tokenize(self) -> list[_Token]:
        out: list[_Token] = []
        while True:
            # A lone trailing backslash yields no token: fetch until one comes.
            while not self.tokens:
                self._fetch_item()
            token = self.tokens.pop(0)
            out.append(token)
            if token.kind in ("EOF", "ERROR"):
                return out

    def _peek(self) -> str:
        return self.data[self.pos] if self.pos < len(self.data) else ""

    def _read(self) -> str:
        char = self._peek()
        self.last_size = len(char)
        self.pos += self.last_size
        return char

    def _unread(self) -> None:
        self.pos -= self.last_size

    def _push(self, kind: str, raw: str = "") -> None:
        self.tokens.append(_Token(kind, raw))

    def _fetch_item(self) -> None:
        char = self._read()
        if char == "":
            self._push("EOF")
        elif char == "{":
            self.terms_level += 1
            self._push("TERMS_OPEN")
        elif char == "," and self.terms_level:
            self._push("SEPARATOR")
        elif char == "}" and self.terms_level:
            self._push("TERMS_CLOSE")
            self.terms_level -= 1
        elif char == "|" and self.capture_level:
            self._push("SEPARATOR")
        elif char == "[":
            self._push("RANGE_OPEN")
            self._fetch_range()
        elif char == "(":
            self._open_capture("@")
        elif char in "@!^+":
            if self._peek() == "(":
                self._read()
                self._open_capture(char)
            else:
                self._unread()
                self._fetch_text(_BASIC_BREAKERS)
        elif char == ")" and self.capture_level:
            self._push("CAPTURE_CLOSE")
            self.capture_level -= 1
        elif char == "?":
            if self._read() == "(":
                self._open_capture("?")
            else:
                self._unread()
                self._push("SINGLE")
        elif char == "*":
            self._fetch_star()
        else:
            self._unread()
            if self.terms_level:
                breakers = _TERMS_BREAKERS
            elif self.capture_level:
                breakers = _CAPTURE_BREAKERS
            else:
                breakers = _EXTENDED_BREAKERS
            self._fetch_text(breakers)

    def _fetch_star(self) -> None:
        following = self._read()
        if following == "*":
            if self._peek() == "(":
                # "**(" is "*" followed by the capture "*(".
                self._unread()
                self._push("ANY")
            else:
                self._push("SUPER")
        elif following == "(":
            self._open_capture("*")
        else:
            self._unread()
            self._push("ANY")

    def _open_capture(self, quantifier: str) -> None:
        self._push("CAPTURE_OPEN", quantifier)
        self.capture_level += 1

    def _fetch_range(self) -> None:
        seen_not = in_posix = escaped = False
        data: list[str] = []
        while True:
            char = self._read()
            if char == "":
                self._push("ERROR", "unexpected end of input")
                return
            if not escaped:
                if char == "\\":
                    escaped = True
                    continue
                if char == "[":
                    in_posix = True
                if char == "]":
                    if not in_posix:
                        break
                    in_posix = False
                # The first '!' or '^' anywhere in the class negates it.
                if not seen_not and char in "!^":
                    self._push("NOT")
                    seen_not = True
                    continue
            escaped = False
            data.append(char)
        if data:
            self._push("TEXT", "".join(data))
        self._push("RANGE_CLOSE")

    def _fetch_text(self, breakers: str) -> None:
        data: list[str] = []
        escaped = False
        while True:
            char = self._read()
            if char == "":
                break
            if not escaped:
                if char == "\\":
                    escaped = True
                    continue
                if char in breakers:
                    self._unread()
                    break
            escaped = False
            data.append(char)
        if data:
            self._push("TEXT", "".join(data))


@dataclass
class _Node:
    kind: str  # pattern, any_of, capture, list, text, any, super, single
    value: str | tuple[bool, str] | None = None
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def add(self, child: _Node) -> _Node:
        child.parent = self
        self.children.append(child)
        return child


def _parse(tokens: list[_Token]) -> _Node:
    root = _Node("pattern")
    tree = root
    items = iter(tokens)
    for token in items:
        kind = token.kind
        if kind == "EOF":
            break
        if kind == "ERROR":
            raise GlobError(token.raw)
        if kind == "TEXT":
            tree.add(_Node("text", token.raw))
        elif kind == "ANY":
            tree.add(_Node("any"))
        elif kind == "SUPER":
            tree.add(_Node("super"))
        elif kind == "SINGLE":
            tree.add(_Node("single"))
        elif kind == "RANGE_OPEN":
            tree.add(_parse_range(items))
        elif kind in ("TERMS_OPEN", "CAPTURE_OPEN"):
            group = tree.add(_Node("any_of" if kind == "TERMS_OPEN" else "capture", token.raw))
            tree = group.add(_Node("pattern"))
        elif kind == "SEPARATOR":
            tree = _ancestor(tree, 1).add(_Node("pattern"))
        elif kind in ("TERMS_CLOSE", "CAPTURE_CLOSE"):
            tree = _ancestor(tree, 2)
    return root


def _ancestor(node: _Node, levels: int) -> _Node:
    for _ in range(levels):
        if node.parent is None:
            raise GlobError("unbalanced braces or parentheses")
        node = node.parent
    return node


def _parse_range(items: Iterator[_Token]) -> _Node:
    negated = False
    chars = ""
    for token in items:
        if token.kind == "EOF":
            raise GlobError("unexpected end")
        if token.kind == "ERROR":
            raise GlobError(token.raw)
        if token.kind == "NOT":
            negated = True
        elif token.kind == "TEXT":
            chars = token.raw
            for name, spelled_out in _POSIX_CLASSES.items():
                chars = chars.replace(name, spelled_out)
        elif token.kind == "RANGE_CLOSE":
            if not chars:
                raise GlobError("a character class must not be empty")
            return _Node("list", (negated, chars))
    raise GlobError("unexpected end")


def _check_nesting(tree: _Node) -> None:
    """Refuse groups nested far deeper than any real glob's (the compiler recurses)."""
    pending = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_GLOB_NESTING:
            raise GlobError(f"its groups nest more than {MAX_GLOB_NESTING // 2} deep")
        pending.extend((child, depth + 1) for child in node.children)


def _negations_bounded(tree: _Node) -> bool:
    """ohmyglob's global rule for `!(...)`: is there a text, `*` or `**` after the end of
    the first negation to close (in pattern order)? If not, every negation must reach the
    end of the path ("$"); if so, a negation only has to fail at its own start."""
    first_end_seen = False

    def walk(node: _Node) -> bool:
        nonlocal first_end_seen
        if node.kind in ("text", "any", "super"):
            return first_end_seen
        for child in node.children:
            if walk(child):
                return True
        if node.kind == "capture" and node.value == "!" and node.children:
            first_end_seen = True
        return False

    return walk(tree)


class _CharClass:
    """A `[...]` class: its characters and ranges read as Python's re reads them."""

    def __init__(self, negated: bool, chars: str):
        self.negated = negated
        self.singles: set[str] = set()
        self.ranges: list[tuple[str, str]] = []
        index = 0
        while index < len(chars):
            low = chars[index]
            if chars[index + 1 : index + 2] != "-":
                self.singles.add(low)
                index += 1
            elif index + 2 == len(chars):  # a trailing '-' is literal
                self.singles.update((low, "-"))
                index += 2
            else:
                high = chars[index + 2]
                if high < low:
                    raise GlobError(f"bad character range {low}-{high}")
                self.ranges.append((low, high))
                index += 3

    def contains(self, char: str) -> bool:
        found = char in self.singles or any(low <= char <= high for low, high in self.ranges)
        return found != self.negated


# Instructions of a compiled glob: (opcode, a, b, c).
_LITERAL = 0  # a: the text
_NOT_SEPARATOR = 1  # one character other than '/'
_NOT_NEWLINE = 2  # one character other than '\n' (the regex '.')
_CLASS = 3  # a: the _CharClass
_SPLIT = 4  # try a, then b
_JUMP = 5  # a
_SAVE = 6  # a: capture slot
_ENTER = 7  # a: loop; its iteration starts here; go to b
_REPEAT = 8  # a: loop; another iteration from here (b), else exit (c)
_UNTIL = 9  # a: loop; an empty iteration exits (c), any other one repeats (b)
_NEGATION = 10  # a: sub-program that must not match here
_LINE_END = 11  # the regex '$': the end, or just before a final '\n'
_END = 12  # the end of the path
_MATCH = 13

_Instruction = tuple[int, object, int, int]


@dataclass
class _Program:
    code: list[_Instruction] = field(default_factory=list)
    # The loops whose body holds each instruction: what may change how it continues.
    loops: list[tuple[int, ...]] = field(default_factory=list)


class _Compiler:
    """The glob tree as programs for `_Matcher`, in the order of the regex ohmyglob builds:
    alternatives tried in order, repetitions greedy, groups numbered by their opening."""

    def __init__(self, bounded: bool):
        self.bounded = bounded
        self.groups = 0
        self.loop_count = 0
        self._program = _Program()
        self._active: list[int] = []

    def program(self, nodes: list[_Node], *, sub: bool) -> _Program:
        """The main program (to the end of the path), or a negation's (a match anywhere)."""
        outer, outer_active = self._program, self._active
        self._program, self._active = _Program(), []
        self._alternatives(nodes, capture=not sub)
        if not sub:
            self._emit(_END)
        elif not self.bounded:
            self._emit(_LINE_END)
        self._emit(_MATCH)
        program = self._program
        self._program, self._active = outer, outer_active
        return program

    def _here(self) -> int:
        return len(self._program.code)

    def _emit(self, opcode: int, a: object = None, b: int = 0, c: int = 0) -> int:
        self._program.code.append((opcode, a, b, c))
        self._program.loops.append(tuple(self._active))
        return self._here() - 1

    def _patch(self, index: int, *, b: int | None = None, c: int | None = None) -> None:
        opcode, a, old_b, old_c = self._program.code[index]
        self._program.code[index] = (
            opcode,
            a,
            old_b if b is None else b,
            old_c if c is None else c,
        )

    def _alternatives(self, nodes: list[_Node], *, capture: bool) -> None:
        jumps = []
        for node in nodes[:-1]:
            split = self._emit(_SPLIT, None, self._here() + 1)
            self._node(node, capture)
            jumps.append(self._emit(_JUMP))
            self._patch(split, c=self._here())
        if nodes:
            self._node(nodes[-1], capture)
        for jump in jumps:
            self._patch(jump, b=self._here())

    def _char_star(self, opcode: int) -> None:
        split = self._emit(_SPLIT, None, self._here() + 1, self._here() + 3)
        self._emit(opcode)
        self._emit(_JUMP, None, split)

    def _node(self, node: _Node, capture: bool) -> None:
        kind = node.kind
        if kind == "pattern":
            for child in node.children:
                self._node(child, capture)
        elif kind == "any_of":
            self._alternatives(node.children, capture=capture)
        elif kind == "capture":
            self._capture(node, capture)
        elif kind == "text":
            if node.value:
                self._emit(_LITERAL, node.value)
        elif kind == "any":
            self._char_star(_NOT_SEPARATOR)
        elif kind == "super":
            self._char_star(_NOT_NEWLINE)
        elif kind == "single":
            self._emit(_NOT_SEPARATOR)
        elif kind == "list":
            assert isinstance(node.value, tuple)  # a "list" node holds (negated, chars)
            self._emit(_CLASS, _CharClass(*node.value))
        else:
            raise GlobError(f"cannot compile glob node {kind}")

    def _capture(self, node: _Node, capture: bool) -> None:
        if not node.children:
            return
        quantifier = node.value
        if quantifier not in ("*", "?", "+", "@", "!"):
            raise GlobError(f"unimplemented quantifier {quantifier}")
        self.groups += 1
        group = self.groups
        if capture:
            self._emit(_SAVE, 2 * group)
        if quantifier == "@":
            self._alternatives(node.children, capture=capture)
        elif quantifier == "?":
            split = self._emit(_SPLIT, None, self._here() + 1)
            self._alternatives(node.children, capture=capture)
            self._patch(split, c=self._here())
        elif quantifier == "!":
            # A negative lookahead, then the rest of the name; captures inside stay unset.
            self._emit(_NEGATION, self.program(node.children, sub=True))
            self._char_star(_NOT_SEPARATOR)
        else:
            self._loop(node, plus=quantifier == "+", capture=capture)
        if capture:
            self._emit(_SAVE, 2 * group + 1)

    def _loop(self, node: _Node, *, plus: bool, capture: bool) -> None:
        self.loop_count += 1
        loop = self.loop_count
        enter = self._emit(_ENTER, loop) if plus else None
        repeat = self._emit(_REPEAT, loop, self._here() + 1)
        if enter is not None:
            self._patch(enter, b=repeat + 1)
        self._active.append(loop)
        self._alternatives(node.children, capture=capture)
        until = self._emit(_UNTIL, loop, repeat)
        self._active.pop()
        self._patch(repeat, c=self._here())
        self._patch(until, c=self._here())


class _TooManySteps(Exception):
    """A match ran past MAX_MATCH_STEPS."""


class _Matcher:
    """One path against one compiled glob.

    The match is a backtracking search in the regex's priority order (so captures are the
    ones ohmyglob's engine reports) that never explores a state twice. A state is
    (instruction, position, which enclosing loops' current iteration is still empty): what
    follows a state depends on nothing else (captures never steer a glob), so a state seen
    before either led to the match or failed, and is skipped. The loops still empty at a
    position are the innermost ones (iterations start in nesting order), so a program of m
    instructions nested d loops deep has at most m * (n + 1) * (d + 1) states on a path of n
    characters.

    A negation only asks whether its alternatives match at a position, which depends on no
    priority: `_starts` answers it for every position at once, by reachability over
    (instruction, position) pairs from the last position back, in O(m * n). So a whole
    match takes O(m * d * n) steps; past MAX_MATCH_STEPS it is refused (a GlobError).
    """

    def __init__(self, text: str, slots: int, loops: int):
        self.text = text
        self.slots = slots
        self.loops = loops
        self.negations: dict[int, list[bool]] = {}
        self.steps_left = MAX_MATCH_STEPS

    def _spend(self, steps: int) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise _TooManySteps

    def run(self, program: _Program) -> tuple[int, ...] | None:
        """The capture slots of the first match in priority order, or None."""
        code, enclosing = program.code, program.loops
        seen: set[tuple[int, int, tuple[bool, ...]]] = set()
        stack = [(0, 0, (-1,) * self.slots, (-1,) * (self.loops + 1))]
        while stack:
            pc, pos, slots, starts = stack.pop()
            while True:
                state = (pc, pos, tuple(starts[loop] == pos for loop in enclosing[pc]))
                if state in seen:
                    break
                seen.add(state)
                self._spend(1 + len(state[2]))
                opcode, a, b, c = code[pc]
                if opcode <= _CLASS:
                    step = self._consumed(opcode, a, pos)
                    if step < 0:
                        break
                    pos += step
                    pc += 1
                elif opcode == _SPLIT:
                    stack.append((c, pos, slots, starts))
                    pc = b
                elif opcode == _JUMP:
                    pc = b
                elif opcode == _SAVE:
                    assert isinstance(a, int)
                    slots = (*slots[:a], pos, *slots[a + 1 :])
                    pc += 1
                elif opcode in (_ENTER, _REPEAT):
                    assert isinstance(a, int)
                    if opcode == _REPEAT:
                        stack.append((c, pos, slots, starts))
                    starts = (*starts[:a], pos, *starts[a + 1 :])
                    pc = b
                elif opcode == _UNTIL:
                    assert isinstance(a, int)
                    pc = c if starts[a] == pos else b
                elif opcode == _MATCH:
                    return slots
                elif self._holds(opcode, a, pos):
                    pc += 1
                else:
                    break
        return None

    def _consumed(self, opcode: int, a: object, pos: int) -> int:
        """How many characters a consuming instruction takes at `pos`; -1 if it fails."""
        text = self.text
        if opcode == _LITERAL:
            assert isinstance(a, str)
            return len(a) if text.startswith(a, pos) else -1
        if pos == len(text):
            return -1
        char = text[pos]
        if opcode == _NOT_SEPARATOR:
            return 1 if char != "/" else -1
        if opcode == _NOT_NEWLINE:
            return 1 if char != "\n" else -1
        assert isinstance(a, _CharClass)
        return 1 if a.contains(char) else -1

    def _holds(self, opcode: int, a: object, pos: int) -> bool:
        """Whether an assertion (a negation, '$' or the end) holds at `pos`."""
        size = len(self.text)
        if opcode == _NEGATION:
            assert isinstance(a, _Program)
            return not self._starts(a)[pos]
        if opcode == _LINE_END:
            return pos == size or (pos == size - 1 and self.text[pos] == "\n")
        assert opcode == _END
        return pos == size

    def _starts(self, program: _Program) -> list[bool]:
        """For every position, whether `program` matches from there (its result cached)."""
        known = self.negations.get(id(program))
        if known is not None:
            return known
        code, size = program.code, len(self.text)
        # Who leads to each instruction without consuming: walked backwards from successes.
        leads_to: list[list[int]] = [[] for _ in code]
        for pc, (opcode, _, b, c) in enumerate(code):
            targets: tuple[int, ...]
            if opcode in (_SPLIT, _REPEAT, _UNTIL):
                targets = (b, c)
            elif opcode in (_JUMP, _ENTER):
                targets = (b,)
            elif opcode in (_SAVE, _NEGATION, _LINE_END, _END):
                targets = (pc + 1,)
            else:
                targets = ()
            for target in targets:
                leads_to[target].append(pc)
        rows: list[bytearray] = [bytearray()] * (size + 1)
        for pos in range(size, -1, -1):
            reached = bytearray(len(code))
            pending = []
            for pc, (opcode, a, _, _) in enumerate(code):
                if opcode == _MATCH:
                    pending.append(pc)
                elif opcode <= _CLASS:
                    step = self._consumed(opcode, a, pos)
                    if step >= 0 and rows[pos + step][pc + 1]:
                        pending.append(pc)
            for pc in pending:
                reached[pc] = 1
            while pending:
                for before in leads_to[pending.pop()]:
                    opcode, a, _, _ = code[before]
                    if reached[before] or (
                        opcode in (_NEGATION, _LINE_END, _END) and not self._holds(opcode, a, pos)
                    ):
                        continue
                    reached[before] = 1
                    pending.append(before)
            rows[pos] = reached
            self._spend(len(code))
        starts = [bool(row[0]) for row in rows]
        self.negations[id(program)] = starts
        return starts


class Glob:
    """A pfs glob, cleaned and compiled as Pachyderm does."""

    def __init__(self, pattern: str):
        self.pattern = clean_path(pattern)
        try:
            if len(self.pattern) > MAX_GLOB_LENGTH:
                raise GlobError(f"it is longer than {MAX_GLOB_LENGTH} characters")
            tree = _parse(_Lexer(self.pattern).tokenize())
            _check_nesting(tree)
            self._compiler = _Compiler(_negations_bounded(tree))
            self._program = self._compiler.program([tree], sub=False)
        except GlobError as error:
            raise GlobError(f"glob {_shown(pattern)} is not valid: {error}") from error

    def _match(self, path: str) -> tuple[int, ...] | None:
        compiler = self._compiler
        matcher = _Matcher(path, 2 * compiler.groups + 2, compiler.loop_count)
        try:
            return matcher.run(self._program)
        except _TooManySteps:
            raise GlobError(
                f"glob {_shown(self.pattern)} takes more than {MAX_MATCH_STEPS:,} steps to "
                f"match the path {_shown(path)}: use a shorter, simpler glob"
            ) from None

    def matches(self, path: str) -> bool:
        """Whether a file ("/a/b") or directory ("/a/") entry is selected by this glob."""
        if path == "/" and self.pattern == "/":
            return True
        return self._match(path.rstrip("/")) is not None

    def captures(self, path: str) -> list[str]:
        """Group 0 (the whole path) and every capture group; unmatched groups are ""."""
        text = path.rstrip("/")
        slots = self._match(text)
        if slots is None:
            return []
        groups = [text]
        for group in range(1, self._compiler.groups + 1):
            start, end = slots[2 * group], slots[2 * group + 1]
            groups.append(text[start:end] if start >= 0 and end >= 0 else "")
        return groups

    def replace(self, path: str, template: str) -> str:
        """Expand `$n`, `${n}` and `$$` in `template` from this glob's match of `path`."""
        return expand_template(template, self.captures(path))


def _shown(pattern: str) -> str:
    """The glob for an error message, cut short if it is long."""
    return repr(pattern) if len(pattern) <= 80 else repr(pattern[:80]) + "..."


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    """A compiled glob, cached: every datum of an input shares one."""
    return Glob(pattern)


def _is_digit(char: str) -> bool:
    return unicodedata.category(char) == "Nd"


def expand_template(template: str, groups: list[str]) -> str:
    """ohmyglob's Replace: `$n`/`${n}` -> group n ("" past the last), `$$` -> '$'.

    Only digits form a group name; a '$' that does not start one stays literal. A name
    with a leading zero (or a non-ASCII digit) makes Pachyderm's worker fail, so it is an
    error here too.
    """
    result: list[str] = []
    rest = template
    while rest:
        dollar = rest.find("$")
        if dollar < 0:
            break
        result.append(rest[:dollar])
        rest = rest[dollar:]
        if rest.startswith("$$"):
            result.append("$")
            rest = rest[2:]
            continue
        parsed = _group_reference(rest)
        if parsed is None:
            result.append("$")
            rest = rest[1:]
            continue
        number, rest = parsed
        if number < 0:
            raise GlobError(
                f"template {template!r}: a group number must not have a leading zero "
                "(Pachyderm fails on it)"
            )
        if number < len(groups):
            result.append(groups[number])
    result.append(rest)
    return "".join(result)


def _group_reference(text: str) -> tuple[int, str] | None:
    """Parse "$12..." or "${12}..." into (number, rest); None when it is not a reference."""
    if len(text) < 2:
        return None
    brace = text[1] == "{"
    body = text[2:] if brace else text[1:]
    end = 0
    while end < len(body) and _is_digit(body[end]):
        end += 1
    if end == 0:
        return None
    name = body[:end]
    if brace:
        if end >= len(body) or body[end] != "}":
            return None
        end += 1
    valid = name.isascii() and not (name[0] == "0" and len(name) > 1) and len(name) <= 9
    return (int(name) if valid else -1), body[end:]
