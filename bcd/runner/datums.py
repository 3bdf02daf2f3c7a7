"""From a pipeline's input spec and the repos' files to its datums, as Pachyderm 2.x builds them.

- pfs: one datum per glob match, holding one input.
- cross: the product of the children's datums, child 0 outermost; empty if a child is empty.
- union: every child's datums unchanged.
- join: every input of every child is bucketed by its `join_on`; per key, the product
  across children. A key missing from some child keeps only the inputs marked
  `outer_join` (and is dropped if none are).
- group: per `group_by` key, one datum with every input of every child with that key.
At every level datums with the same ID collapse into the first (Pachyderm stores them by ID).

The datum ID is hex BLAKE2b-256 over, per input in order: name, repo, branch and path, each
followed by its byte length as a big-endian int64. The hash used for skipping adds the
content hash of every input and the pipeline's salt.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bcd.runner.fileset import RepoFiles
from bcd.runner.globs import compile_glob
from bcd.runner.spec import InputSpec, PfsInput


@dataclass(frozen=True)
class DatumInput:
    """One matched repo entry inside a datum. `path` keeps the trailing '/' of a directory."""

    name: str
    repo: str
    branch: str
    path: str
    source: Path
    content_hash: bytes
    join_on: str = ""
    group_by: str = ""
    outer_join: bool = False


@dataclass(frozen=True)
class Datum:
    """An ordered tuple of inputs; its identity is its ID."""

    inputs: tuple[DatumInput, ...]

    @cached_property
    def id(self) -> str:
        return datum_id(self.inputs)


def datum_id(inputs: Iterable[DatumInput]) -> str:
    """Pachyderm's DatumID: independent of content and commit."""
    digest = hashlib.blake2b(digest_size=32)
    for item in inputs:
        for text in (item.name, item.repo, item.branch, item.path):
            encoded = text.encode()
            digest.update(encoded)
            digest.update(len(encoded).to_bytes(8, "big", signed=True))
    return digest.hexdigest()


def datum_hash(datum: Datum, salt: str) -> str:
    """Pachyderm's HashDatum: same ID, same content and same salt give the same hash."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(datum.id.encode())
    for item in datum.inputs:
        digest.update(item.content_hash)
    digest.update(salt.encode())
    return digest.hexdigest()


def build_datums(node: InputSpec, repos: Mapping[str, RepoFiles]) -> list[Datum]:
    """The datums of an input tree; `repos` maps each repo name to its files."""
    if isinstance(node, PfsInput):
        datums = _pfs_datums(node, repos[node.repo])
    else:
        children = [build_datums(child, repos) for child in node.children]
        datums = _COMBINE[node.kind](children)
    return _unique(datums)


def _pfs_datums(pfs: PfsInput, repo: RepoFiles) -> list[Datum]:
    glob = compile_glob(pfs.glob)
    datums = []
    for path in repo.entries():
        if not glob.matches(path):
            continue
        item = DatumInput(
            name=pfs.name,
            repo=pfs.repo,
            branch=pfs.branch,
            path=path,
            source=repo.local_path(path),
            content_hash=repo.content_hash(path),
            join_on=glob.replace(path, pfs.join_on) if pfs.join_on else "",
            group_by=glob.replace(path, pfs.group_by) if pfs.group_by else "",
            outer_join=pfs.outer_join,
        )
        datums.append(Datum((item,)))
    return datums


def _cross(children: list[list[Datum]]) -> list[Datum]:
    return [
        Datum(tuple(item for datum in combo for item in datum.inputs))
        for combo in itertools.product(*children)
    ]


def _union(children: list[list[Datum]]) -> list[Datum]:
    return [datum for datums in children for datum in datums]


def _buckets(
    children: list[list[Datum]], key_of: Callable[[DatumInput], str]
) -> list[dict[str, list[DatumInput]]]:
    """Per child, its inputs (datums split apart) bucketed by key, in order."""
    buckets = []
    for datums in children:
        bucket: dict[str, list[DatumInput]] = {}
        for datum in datums:
            for item in datum.inputs:
                bucket.setdefault(key_of(item), []).append(item)
        buckets.append(bucket)
    return buckets


def _keys(buckets: list[dict[str, list[DatumInput]]]) -> list[str]:
    return list(dict.fromkeys(key for bucket in buckets for key in bucket))


def _join(children: list[list[Datum]]) -> list[Datum]:
    buckets = _buckets(children, lambda item: item.join_on)
    datums = []
    for key in _keys(buckets):
        present = [bucket[key] for bucket in buckets if key in bucket]
        complete = len(present) == len(buckets)
        for combo in itertools.product(*present):
            kept = combo if complete else tuple(item for item in combo if item.outer_join)
            if kept:
                datums.append(Datum(tuple(kept)))
    return datums


def _group(children: list[list[Datum]]) -> list[Datum]:
    buckets = _buckets(children, lambda item: item.group_by)
    return [
        Datum(tuple(item for bucket in buckets for item in bucket.get(key, ())))
        for key in _keys(buckets)
    ]


_COMBINE = {"cross": _cross, "union": _union, "join": _join, "group": _group}


def _unique(datums: list[Datum]) -> list[Datum]:
    by_id: dict[str, Datum] = {}
    for datum in datums:
        by_id.setdefault(datum.id, datum)
    return list(by_id.values())
