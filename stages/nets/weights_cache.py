"""Networks loaded from the models input, kept while the checkpoint files stay the same.

A batched stage serves many datums in one process, and each datum brings its own copy of
the models input. The networks are loaded for the first datum, and again only for a
datum whose files differ by sha256 from the ones loaded (a job over another `models`
commit). Hashing is cheap beside loading: ~20 ms for the 28 MB patch model, page-cached.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from stages.nets.provenance import file_sha256

LoadedT = TypeVar("LoadedT")


class WeightsCache(Generic[LoadedT]):
    """What `load` made of some checkpoint files, made again only when their contents change."""

    def __init__(self, stage: str) -> None:
        self._stage = stage
        self._loaded: tuple[tuple[str, ...], LoadedT] | None = None

    def get(self, files: Sequence[Path], load: Callable[[], LoadedT]) -> LoadedT:
        """`load()` for these files, or what it returned for files with the same contents.

        A missing file counts as changed, so that `load` says what is missing.
        """
        digests = tuple(file_sha256(path) if path.is_file() else "" for path in files)
        if self._loaded is None or self._loaded[0] != digests:
            self._loaded = (digests, load())
            loaded = ", ".join(
                f"{path.name} (sha256 {digest[:12]})"
                for path, digest in zip(files, digests, strict=True)
            )
            print(f"bcd {self._stage}: weights loaded: {loaded}", file=sys.stderr, flush=True)
        return self._loaded[1]
