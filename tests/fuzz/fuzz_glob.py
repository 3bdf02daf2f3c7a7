"""Fuzz the pfs glob matcher: the bytes are a glob and a path (split at the first NUL).
A glob compiles or is a GlobError; a match returns (or is refused with a GlobError past
its step limit) and agrees with the captures. A slow match is a hang: run with -timeout."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["bcd"]):
    from bcd.runner.errors import GlobError
    from bcd.runner.globs import Glob

# Longer than real globs and paths, short enough that the slowest match stays well under
# the fuzzer's 2 s (the step limit allows seconds on a huge glob and path).
MAX_PATTERN = 48
MAX_PATH = 200


def fuzz_one_input(data: bytes) -> None:
    pattern_bytes, _, path_bytes = data.partition(b"\0")
    pattern = pattern_bytes.decode("utf-8", "replace")[:MAX_PATTERN]
    path = "/" + path_bytes.decode("utf-8", "replace")[:MAX_PATH]
    try:
        glob = Glob(pattern)
    except GlobError:
        return
    try:
        selected = glob.matches(path)
        groups = glob.captures(path)
        glob.replace(path, "$1/${2}-$$")
    except GlobError as error:
        assert "steps" in str(error) or "leading zero" in str(error), error
        return
    if path.rstrip("/"):  # the root is special: only the glob "/" selects it
        assert selected is bool(groups), (pattern, path)
    if groups:
        assert groups[0] == path.rstrip("/")


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
