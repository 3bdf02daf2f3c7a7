"""The glob matcher on hostile patterns and paths, and against a naive matcher on random ones.

The naive matcher below reads the same parse tree (the parser is covered by the upstream
cases in test_runner_globs.py) and backtracks through it without any memory, in the order
of the regex ohmyglob builds: exponential at worst, so it only sees short globs and paths.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable

import pytest
from runner_sandbox import Sandbox, pfs, pipeline

from bcd.runner.errors import GlobError
from bcd.runner.globs import (
    MAX_GLOB_LENGTH,
    MAX_MATCH_STEPS,
    Glob,
    _Lexer,
    _Node,
    _parse,
    clean_path,
)

Found = tuple[int, dict[int, tuple[int, int]]] | None
Continuation = Callable[[int, dict[int, tuple[int, int]]], Found]

# (glob, path, selected): each of these took the old regex matcher exponential time.
HOSTILE = [
    ("/*(*!(x))", "/" + "a" * 21, True),
    ("/*(*!(x))", "/" + "a" * 20 + "/b", False),
    ("/*(*!(x))", "/" + "a" * 3000, True),
    ("/*(*!(x))", "/" + "a" * 3000 + "/b", False),
    ("/*(*!(x))y", "/" + "a" * 3000, False),
    ("/*(a|*)*(a|*)b", "/" + "a" * 3000, False),
    ("/*(*(*(*)))z", "/" + "a" * 3000, False),
    ("/**!(**z)y", "/" + "a/" * 1500, False),
    ("/+(*?(a))!(b)", "/" + "a" * 3000, True),
    ("/!(!(!(*a)b)c)d", "/" + "a" * 3000, False),
]


def test_hostile_globs_finish() -> None:
    """Run in a child with a generous limit: a hang fails the test instead of stalling it."""
    script = textwrap.dedent(
        """
        import json, sys
        from bcd.runner.globs import Glob
        for pattern, path, _ in json.load(sys.stdin):
            print(Glob(pattern).matches(path))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(HOSTILE),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(selected) for _, _, selected in HOSTILE]


def test_captures_on_a_long_path():
    name = "a" * 3000
    assert Glob("/*(*!(x))").replace("/" + name, "$1") == name
    assert Glob("/(*)-(*)").replace(f"/{name}-b", "$2/$1") == f"b/{name}"


def test_a_trailing_backslash_is_no_token():
    # The lexer once ran out of tokens here (IndexError): `(` `?` `]` `?` and a lone '\'.
    glob = Glob("(?]?\\")
    assert glob.matches("/a]b")
    assert glob.captures("/a]b") == ["/a]b", "a]b"]


def test_marker_characters_are_plain_text():
    # The old regex port used U+FFFE and U+FFFF as markers and deleted them from the glob.
    assert Glob("/a\ufffeb").matches("/a\ufffeb")
    assert not Glob("/a\ufffeb").matches("/ab")
    assert Glob("/!(x)\uffff").matches("/y\uffff")


@pytest.mark.parametrize(
    ("pattern", "refusal"),
    [
        ("/" + "a" * MAX_GLOB_LENGTH, "longer than"),
        ("/" + "(" * 40 + "a" + ")" * 40, "nest more than"),
        ("/" + "*(" * 40, "nest more than"),
    ],
)
def test_oversized_globs_are_refused_by_name(pattern: str, refusal: str):
    with pytest.raises(GlobError, match=refusal) as raised:
        Glob(pattern)
    message = str(raised.value)
    assert message.startswith(f"glob {pattern[:80]!r}...")  # named, and cut short
    assert len(message) < 300


# The naive matcher.


def _groups(tree: _Node) -> dict[int, int]:
    """Capture nodes (with alternatives) numbered by their opening, as in the regex."""
    numbers: dict[int, int] = {}

    def walk(node: _Node) -> None:
        if node.kind == "capture" and node.children:
            numbers[id(node)] = len(numbers) + 1
        for child in node.children:
            walk(child)

    walk(tree)
    return numbers


def _bounded(tree: _Node) -> bool:
    """ohmyglob's rule, spelled with its markers: is a boundary after the first `!(..)` end?"""

    def spell(node: _Node) -> str:
        inner = "".join(spell(child) for child in node.children)
        if node.kind in ("text", "any", "super"):
            return "B"
        if node.kind == "capture" and node.value == "!" and node.children:
            return inner + "N)"
        return inner

    spelled = spell(tree)
    return "N)" in spelled and "B" in spelled[spelled.index("N)") :]


def _class(negated: bool, chars: str) -> re.Pattern[str]:
    body = "".join(char if char == "-" else re.escape(char) for char in chars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile("[" + ("^" if negated else "") + body + "]")


class Naive:
    def __init__(self, pattern: str):
        self.tree = _parse(_Lexer(pattern).tokenize())
        self.numbers = _groups(self.tree)
        self.bounded = _bounded(self.tree)
        self.classes: dict[int, re.Pattern[str]] = {}
        self._compile_classes(self.tree)

    def _compile_classes(self, node: _Node) -> None:
        if node.kind == "list":
            assert isinstance(node.value, tuple)
            try:
                self.classes[id(node)] = _class(*node.value)
            except re.error as error:
                raise GlobError(str(error)) from error
        for child in node.children:
            self._compile_classes(child)

    def captures(self, path: str) -> list[str]:
        found = self.match(self.tree, path, 0, {}, lambda p, c: (p, c) if p == len(path) else None)
        if found is None:
            return []
        spans = found[1]
        return [path] + [
            path[slice(*spans[number])] if number in spans else ""
            for number in range(1, len(self.numbers) + 1)
        ]

    def match(
        self, node: _Node, text: str, pos: int, caps: dict[int, tuple[int, int]], then: Continuation
    ) -> Found:
        kind = node.kind
        if kind == "pattern":
            return self._sequence(node.children, text, pos, caps, then)
        if kind == "any_of":
            return self._alternatives(node.children, text, pos, caps, then)
        if kind == "text":
            assert isinstance(node.value, str)
            return then(pos + len(node.value), caps) if text.startswith(node.value, pos) else None
        if kind in ("any", "super"):
            stop = "/" if kind == "any" else "\n"
            end = pos
            while end < len(text) and text[end] != stop:
                end += 1
            return self._first(range(end, pos - 1, -1), caps, then)
        if kind == "single":
            ok = pos < len(text) and text[pos] != "/"
            return then(pos + 1, caps) if ok else None
        if kind == "list":
            ok = pos < len(text) and self.classes[id(node)].fullmatch(text[pos]) is not None
            return then(pos + 1, caps) if ok else None
        assert kind == "capture"
        if not node.children:
            return then(pos, caps)
        return self._capture(node, text, pos, caps, then)

    def _capture(
        self, node: _Node, text: str, pos: int, caps: dict[int, tuple[int, int]], then: Continuation
    ) -> Found:
        number = self.numbers[id(node)]
        alternatives = node.children

        def close(end: int, inner: dict[int, tuple[int, int]]) -> Found:
            return then(end, {**inner, number: (pos, end)})

        if node.value == "@":
            return self._alternatives(alternatives, text, pos, caps, close)
        if node.value == "?":
            found = self._alternatives(alternatives, text, pos, caps, close)
            return found if found is not None else close(pos, caps)
        if node.value == "!":

            def ahead(end: int, _: dict[int, tuple[int, int]]) -> Found:
                at_end = end == len(text) or (end == len(text) - 1 and text[end] == "\n")
                return (end, {}) if self.bounded or at_end else None

            if self._alternatives(alternatives, text, pos, {}, ahead) is not None:
                return None
            end = pos
            while end < len(text) and text[end] != "/":
                end += 1
            return self._first(range(end, pos - 1, -1), caps, close)

        def iterate(start: int, inner: dict[int, tuple[int, int]]) -> Found:
            """One more iteration from `start`; an empty one ends the loop."""

            def after(end: int, state: dict[int, tuple[int, int]]) -> Found:
                return close(end, state) if end == start else iterate(end, state)

            found = self._alternatives(alternatives, text, start, inner, after)
            return found if found is not None else close(start, inner)

        if node.value == "*":
            return iterate(pos, caps)
        assert node.value == "+"

        def after_first(end: int, state: dict[int, tuple[int, int]]) -> Found:
            return close(end, state) if end == pos else iterate(end, state)

        return self._alternatives(alternatives, text, pos, caps, after_first)

    def _sequence(
        self,
        nodes: list[_Node],
        text: str,
        pos: int,
        caps: dict[int, tuple[int, int]],
        then: Continuation,
    ) -> Found:
        if not nodes:
            return then(pos, caps)
        return self.match(
            nodes[0], text, pos, caps, lambda p, c: self._sequence(nodes[1:], text, p, c, then)
        )

    def _alternatives(
        self,
        nodes: list[_Node],
        text: str,
        pos: int,
        caps: dict[int, tuple[int, int]],
        then: Continuation,
    ) -> Found:
        for node in nodes:
            found = self.match(node, text, pos, caps, then)
            if found is not None:
                return found
        return None

    @staticmethod
    def _first(ends: range, caps: dict[int, tuple[int, int]], then: Continuation) -> Found:
        for end in ends:
            found = then(end, caps)
            if found is not None:
                return found
        return None


TOKENS = [
    "/", "a", "b", "ab", "*", "**", "?", "[ab]", "[!a]", "[a-b]", "[b-a]", "{", "}", ",", "(",
    ")", "|", "*(", "+(", "?(", "!(", "@(", "\\", "-", "\n", "[", "]", "x",
]  # fmt: skip


def test_matcher_agrees_with_the_naive_one_on_random_globs() -> None:
    rng = random.Random(15)
    compared = 0
    for _ in range(2500):
        pattern = "".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 7)))
        try:
            glob = Glob(pattern)
        except GlobError:
            with pytest.raises(GlobError):
                Naive(clean_path(pattern))
            continue
        naive = Naive(glob.pattern)
        for _ in range(4):
            # Not the root, which only the glob "/" selects (test_runner_globs.py).
            path = "/" + rng.choice("abx") + "".join(rng.choices("ab/\nx", k=rng.randint(0, 5)))
            expected = naive.captures(path.rstrip("/"))
            assert glob.captures(path) == expected, (pattern, path)
            assert glob.matches(path) is bool(expected), (pattern, path)
            compared += 1
    assert compared > 5000


def test_a_match_past_the_step_limit_is_refused_by_name():
    glob = Glob("/" + "*(a|)" * 100 + "b")
    with pytest.raises(GlobError, match=f"takes more than {MAX_MATCH_STEPS:,} steps") as raised:
        glob.matches("/" + "a" * 3000)
    message = str(raised.value)
    assert message.startswith("glob '/*(a|)*(a|)") and "the path '/aaaa" in message
    assert len(message) < 400


def test_bcd_run_reports_a_glob_too_costly_for_a_path(sandbox: Sandbox):
    sandbox.repo("sample_data", {"a" * 250 + "/" + "a" * 250: "1"})
    sandbox.specs(pipeline("crop", pfs("sample_data", "/" + "*(**|a)" * 120 + "b"), ["true"]))
    done = sandbox.cli()
    # The pipeline is unrunnable (exit 1), with the reason in the summary; no traceback.
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert f"takes more than {MAX_MATCH_STEPS:,} steps to match the path '/aaaa" in done.stdout
