"""Pachyderm's glob patterns (the ohmyglob library), ported to Python regular expressions.

Pachyderm cleans a pfs glob (`CleanPath`), compiles it with '/' as the separator into an
anchored regex and matches it against every file and every directory of the commit, with
a directory's trailing '/' removed; the root "/" matches only the glob "/". Captures fill
`join_on` / `group_by` templates (`$1`, `${1}`, `$$`). The lexer, parser and compiler
below follow ohmyglob step by step, quirks included, so a pattern selects locally exactly
what it selects on a cluster.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from bcd.runner.errors import GlobError

# Markers ohmyglob puts in the regex while compiling `!(...)`; removed before matching.
_NEGATION_END = "\uffff"
_BOUNDARY = "\ufffe"
_NOT_SEPARATOR = "[^/]"

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
# Characters Go's regexp.QuoteMeta escapes; '-' is not among them, so ranges survive.
_GO_META = set("\\.+*?()|[]{}^$")


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
            if not self.tokens:
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


def _go_quote_meta(text: str) -> str:
    return "".join("\\" + char if char in _GO_META else char for char in text)


def _compile_node(node: _Node) -> str:
    kind = node.kind
    if kind == "pattern":
        return "".join(_compile_node(child) for child in node.children)
    if kind == "any_of":
        if not node.children:
            return ""
        return "(?:" + "|".join(_compile_node(child) for child in node.children) + ")"
    if kind == "capture":
        return _compile_capture(node)
    if kind == "any":
        return _NOT_SEPARATOR + "*" + _BOUNDARY
    if kind == "super":
        return ".*" + _BOUNDARY
    if kind == "single":
        return _NOT_SEPARATOR
    if kind == "list":
        assert isinstance(node.value, tuple)  # a "list" node holds (negated, chars)
        negated, chars = node.value
        # Python warns about set operations ("--", "&&", "~~") that Go's syntax lacks.
        safe = _go_quote_meta(chars).replace("&", "\\&").replace("~", "\\~")
        return "[" + ("^" if negated else "") + safe + "]"
    if kind == "text":
        assert isinstance(node.value, str)  # a "text" node holds its text
        return re.escape(node.value) + _BOUNDARY
    raise GlobError(f"cannot compile glob node {kind}")


def _compile_capture(node: _Node) -> str:
    if not node.children:
        return ""
    quantifier = node.value
    joiner = _NEGATION_END + "|" if quantifier == "!" else "|"
    alternatives = joiner.join(_compile_node(child) for child in node.children)
    if quantifier == "*":
        return "((?:" + alternatives + ")*)"
    if quantifier == "?":
        return "((?:" + alternatives + ")?)"
    if quantifier == "+":
        return "((?:" + alternatives + ")+)"
    if quantifier == "@":
        return "(" + alternatives + ")"
    if quantifier == "!":
        return f"((?:(?!(?:{alternatives}{_NEGATION_END})){_NOT_SEPARATOR}*))"
    raise GlobError(f"unimplemented quantifier {quantifier}")


def glob_to_regex(pattern: str) -> str:
    """The anchored regular expression ohmyglob builds for `pattern` (not cleaned here)."""
    regex = _compile_node(_parse(_Lexer(pattern).tokenize()))
    negation_end = regex.find(_NEGATION_END + ")")
    if negation_end > 0:
        # A negation stops at the next boundary, or else runs to the end of the path.
        bounded = _BOUNDARY in regex[negation_end:]
        regex = regex.replace(_NEGATION_END, "" if bounded else "$")
    return r"\A" + regex.replace(_BOUNDARY, "") + r"\Z"


class Glob:
    """A pfs glob, cleaned and compiled as Pachyderm does."""

    def __init__(self, pattern: str):
        self.pattern = clean_path(pattern)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self._regex = re.compile(glob_to_regex(self.pattern))
        except re.error as error:
            raise GlobError(f"glob {pattern!r} is not valid: {error}") from error

    def matches(self, path: str) -> bool:
        """Whether a file ("/a/b") or directory ("/a/") entry is selected by this glob."""
        if path == "/" and self.pattern == "/":
            return True
        return self._regex.match(path.rstrip("/")) is not None

    def captures(self, path: str) -> list[str]:
        """Group 0 (the whole path) and every capture group; unmatched groups are ""."""
        found = self._regex.match(path.rstrip("/"))
        if found is None:
            return []
        return [found.group(0)] + [group or "" for group in found.groups()]

    def replace(self, path: str, template: str) -> str:
        """Expand `$n`, `${n}` and `$$` in `template` from this glob's match of `path`."""
        return expand_template(template, self.captures(path))


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
