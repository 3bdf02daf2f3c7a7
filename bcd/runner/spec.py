"""Pipeline specs: read JSON files the way `pachctl create pipeline -f` does, check them, and
turn them into the small typed model the runner plays.

A file holds one spec, a JSON list of specs, or several JSON documents one after another
(optionally separated by YAML's `---` lines). Keys may be snake_case (proto names) or
camelCase (JSON names), as protojson accepts both; they are canonicalised to snake_case,
except the keys of map fields such as `transform.env`, which are data. Unknown fields are
errors, as in Pachyderm. The children of cross/join/group/union are stable-sorted by the
input names written in the spec before `name` defaults to the repo (`setInputDefaults`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcd.runner.errors import GlobError, SpecError
from bcd.runner.globs import compile_glob

# Fields whose values are maps: their keys are data, never renamed.
_MAP_FIELDS = frozenset({"env", "annotations", "labels", "node_selector"})

# Field names (snake_case) of the messages the runner reads, from Pachyderm's pps_v2 schema.
_PIPELINE_FIELDS = frozenset(
    {
        "autoscaling", "datum_set_spec", "datum_timeout", "datum_tries", "description",
        "determined", "egress", "input", "job_timeout", "maximum_expected_uptime", "metadata",
        "output_branch", "parallelism_spec", "pipeline", "pod_patch", "pod_spec",
        "reprocess_spec", "resource_limits", "resource_requests", "s3_out", "salt",
        "scheduling_spec", "service", "sidecar_resource_limits", "sidecar_resource_requests",
        "spout", "tf_job", "tolerations", "transform",
        # Read by pachctl itself, not by the server.
        "update", "reprocess",
    }
)  # fmt: skip
_TRANSFORM_FIELDS = frozenset(
    {
        "accept_return_code", "cmd", "datum_batching", "debug", "dockerfile", "env",
        "err_cmd", "err_stdin", "image", "image_pull_secrets", "memory_volume", "secrets",
        "stdin", "user", "working_dir",
    }
)  # fmt: skip
_INPUT_FIELDS = frozenset({"cron", "cross", "group", "join", "pfs", "union"})
_PFS_FIELDS = frozenset(
    {
        "branch", "commit", "empty_files", "glob", "group_by", "join_on", "lazy", "name",
        "outer_join", "project", "propagation_spec", "reference", "repo", "repo_type", "s3",
        "trigger",
    }
)  # fmt: skip
_DATUM_SET_SPEC_FIELDS = frozenset({"number", "per_worker", "size_bytes"})
_RESOURCE_FIELDS = frozenset({"cpu", "disk", "gpu", "memory"})
_GPU_FIELDS = frozenset({"number", "type"})
_PIPELINE_NAME_FIELDS = frozenset({"name", "project"})
_PROJECT_FIELDS = frozenset({"name"})

# Spec features that change what a job does in ways a local run cannot reproduce.
_UNSUPPORTED_TOP = {"spout": "spouts", "service": "services", "tf_job": "TFJobs"}
_UNSUPPORTED_PFS = {"s3": "s3 inputs", "empty_files": "empty_files", "trigger": "triggers"}

_REPO_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_DURATION = re.compile(r"^(-?)(\d+)(?:\.(\d{1,9}))?s$")
_JSON_GAP = re.compile(r"(?:\s+|---(?=\s|$))*")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")

# Real specs nest about six levels; anything far deeper is refused before it is walked.
MAX_SPEC_NESTING = 64
_INT64 = range(-(2**63), 2**63)

DEFAULT_DATUM_TRIES = 3
DEFAULT_BRANCH = "master"
DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class PfsInput:
    """A pfs input after defaults: `name` is the repo unless the spec named it."""

    name: str
    repo: str
    branch: str
    glob: str
    join_on: str = ""
    group_by: str = ""
    outer_join: bool = False


@dataclass(frozen=True)
class CompositeInput:
    """cross, join, group or union of child inputs, children in Pachyderm's order."""

    kind: str
    children: tuple[InputSpec, ...]


InputSpec = PfsInput | CompositeInput


@dataclass(frozen=True)
class Transform:
    """What runs for each datum. `stdin` None means no stdin at all (not even a newline).

    With `datum_batching` the command runs once per datum set and asks the worker API for
    each datum (see `batch`).
    """

    cmd: tuple[str, ...]
    stdin: tuple[str, ...] | None
    env: Mapping[str, str]
    err_cmd: tuple[str, ...]
    err_stdin: tuple[str, ...] | None
    accept_return_code: frozenset[int]
    datum_batching: bool = False


@dataclass(frozen=True)
class DatumSetSpec:
    """`datum_set_spec`: datums per set, or bytes per set, or sets per worker (0: unset)."""

    number: int = 0
    size_bytes: int = 0
    per_worker: int = 0


@dataclass(frozen=True)
class PipelineSpec:
    """One pipeline as the runner plays it."""

    name: str
    project: str
    input: InputSpec
    transform: Transform
    datum_tries: int
    datum_timeout: float | None
    job_timeout: float | None
    datum_set_spec: DatumSetSpec
    gpus_per_datum: int
    skip_unchanged: bool
    salt: str | None
    source: Path

    def input_repos(self) -> list[str]:
        """The repos this pipeline reads, in input order, each once."""
        return list(dict.fromkeys(pfs.repo for pfs in iter_pfs(self.input)))


def iter_pfs(node: InputSpec) -> Iterator[PfsInput]:
    """Every pfs input under `node`, depth first, in order."""
    if isinstance(node, PfsInput):
        yield node
    else:
        for child in node.children:
            yield from iter_pfs(child)


def snake_case(key: str) -> str:
    """`datumTries` -> `datum_tries`; snake_case keys are unchanged."""
    return _CAMEL_HUMP.sub(lambda hump: "_" + hump.group(1).lower(), key)


def canonical_keys(value: Any) -> Any:
    """Every message key in snake_case; a field given in both spellings is an error."""
    if isinstance(value, list):
        return [canonical_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = snake_case(key)
        if name in result:
            raise SpecError(f"field {_shown(name)} is given twice (as snake_case and camelCase)")
        result[name] = item if name in _MAP_FIELDS else canonical_keys(item)
    return result


def load_spec_dir(folder: Path) -> list[PipelineSpec]:
    """The specs of every `*.json` file directly in `folder`, names unique."""
    if not folder.is_dir():
        raise SpecError(f"pipeline folder {folder} does not exist")
    specs: list[PipelineSpec] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        for spec in load_spec_file(path):
            if spec.name in seen:
                raise SpecError(
                    f"pipeline {spec.name!r} is defined twice: in {seen[spec.name]} and {path}"
                )
            seen[spec.name] = path
            specs.append(spec)
    if not specs:
        raise SpecError(f"no pipeline specs (*.json) in {folder}")
    return specs


def load_spec_file(path: Path) -> list[PipelineSpec]:
    """The specs in one file: an object, a list of objects, or several documents."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror}") from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x}); "
            "save the spec as UTF-8"
        ) from error
    specs = []
    for index, document in enumerate(_json_documents(text, path)):
        try:
            specs.append(parse_spec(document, path))
        except SpecError as error:
            raise SpecError(f"{path} (spec {index + 1}): {error}") from error
    return specs


def _json_documents(text: str, path: Path) -> list[Any]:
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = _gap_end(text, 0)
    while position < len(text):
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise SpecError(f"{path}: not valid JSON: {error}") from error
        except ValueError as error:  # an integer past Python's digit limit
            raise SpecError(
                f"{path}: holds a number of thousands of digits, more than any field takes"
            ) from error
        except RecursionError as error:
            raise SpecError(_too_deep(path)) from error
        _check_values(document, path)
        documents.extend(document if isinstance(document, list) else [document])
        position = _gap_end(text, position)
    return documents


def _too_deep(path: Path) -> str:
    return f"{path}: JSON nested more than {MAX_SPEC_NESTING} levels deep; no spec is"


def _check_values(document: Any, path: Path) -> None:
    """Refuse nesting far past any spec's and strings that are not text (lone surrogates)."""
    pending = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_SPEC_NESTING:
            raise SpecError(_too_deep(path))
        if isinstance(value, dict):
            pending.extend((key, depth + 1) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise SpecError(
                    f"{path}: the string {value[:40]!r} holds a lone surrogate escape "
                    f"(\\u{ord(value[error.start]):04x}), which is not text"
                ) from error


def _gap_end(text: str, position: int) -> int:
    """Where the whitespace and `---` separators starting at `position` end."""
    gap = _JSON_GAP.match(text, position)
    assert gap is not None  # the pattern matches the empty string, so match() never fails
    return gap.end()


def parse_spec(document: Any, source: Path) -> PipelineSpec:
    """Check one spec document and build its model."""
    if not isinstance(document, dict):
        raise SpecError("a pipeline spec must be a JSON object")
    document = {key: value for key, value in document.items() if key != "$schema"}
    raw = canonical_keys(document)
    _check_fields(raw, _PIPELINE_FIELDS, "the spec")
    for field_name, what in _UNSUPPORTED_TOP.items():
        if raw.get(field_name):
            raise SpecError(f"{what} cannot run locally ({field_name!r})")
    if raw.get("s3_out"):
        raise SpecError("s3_out cannot run locally")

    pipeline = _object(raw, "pipeline", _PIPELINE_NAME_FIELDS, required=True)
    name = pipeline.get("name")
    if not isinstance(name, str) or not _REPO_NAME.match(name):
        raise SpecError(f"pipeline.name {_shown(name)} must be letters, digits, '_' or '-'")
    project = _object(pipeline, "project", _PROJECT_FIELDS).get("name") or DEFAULT_PROJECT
    if not isinstance(project, str) or not _REPO_NAME.match(project):
        raise SpecError(
            f"pipeline.project.name {_shown(project)} must be letters, digits, '_' or '-'"
        )

    if "input" not in raw:
        raise SpecError(f"pipeline {name}: 'input' is required")
    input_spec, _ = _parse_input(raw["input"], "input")
    _check_composite_names(input_spec)

    reprocess_spec = raw.get("reprocess_spec", "until_success")
    if reprocess_spec not in ("until_success", "every_job"):
        raise SpecError(
            f"reprocess_spec must be 'until_success' or 'every_job', not {_shown(reprocess_spec)}"
        )
    salt = raw.get("salt")
    if salt is not None and not isinstance(salt, str):
        raise SpecError("salt must be a string")

    return PipelineSpec(
        name=name,
        project=project,
        input=input_spec,
        transform=_parse_transform(_object(raw, "transform", _TRANSFORM_FIELDS, required=True)),
        datum_tries=_datum_tries(raw.get("datum_tries")),
        datum_timeout=_duration(raw.get("datum_timeout"), "datum_timeout"),
        job_timeout=_duration(raw.get("job_timeout"), "job_timeout"),
        datum_set_spec=_datum_set_spec(_object(raw, "datum_set_spec", _DATUM_SET_SPEC_FIELDS)),
        gpus_per_datum=max(_gpus(raw, "resource_requests"), _gpus(raw, "resource_limits")),
        skip_unchanged=reprocess_spec == "until_success",
        salt=salt or None,
        source=source,
    )


def _check_fields(obj: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise SpecError(f"unknown field {_shown(unknown[0])} in {where} (Pachyderm rejects it)")


def _object(
    parent: dict[str, Any], key: str, known: frozenset[str], *, required: bool = False
) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise SpecError(f"{key!r} is required")
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{key!r} must be an object")
    _check_fields(value, known, key)
    return value


def _parse_input(raw: Any, where: str) -> tuple[InputSpec, str]:
    """The input model and its sort name (the name written in the spec, "" if none)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be an object")
    _check_fields(raw, _INPUT_FIELDS, where)
    kinds = [kind for kind in _INPUT_FIELDS if raw.get(kind) is not None]
    if len(kinds) != 1:
        raise SpecError(f"{where} must have exactly one of pfs, cross, join, group, union")
    kind = kinds[0]
    if kind == "cron":
        raise SpecError(f"{where}: cron inputs cannot run locally")
    if kind == "pfs":
        return _parse_pfs(raw["pfs"], f"{where}.pfs")
    items = raw[kind]
    if not isinstance(items, list) or not items:
        raise SpecError(f"{where}.{kind} must be a non-empty list of inputs")
    parsed = [_parse_input(item, f"{where}.{kind}[{i}]") for i, item in enumerate(items)]
    # Pachyderm stable-sorts children by the names written in the spec (SortInput).
    parsed.sort(key=lambda child: child[1])
    return CompositeInput(kind, tuple(child for child, _ in parsed)), parsed[0][1]


def _parse_pfs(raw: Any, where: str) -> tuple[PfsInput, str]:
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be an object")
    _check_fields(raw, _PFS_FIELDS, where)
    for field_name, what in _UNSUPPORTED_PFS.items():
        if raw.get(field_name):
            raise SpecError(f"{where}: {what} cannot run locally")
    if raw.get("commit"):
        raise SpecError(f"{where}: 'commit' is not allowed in a pipeline input")
    repo, glob = raw.get("repo"), raw.get("glob")
    if not isinstance(repo, str) or not _REPO_NAME.match(repo):
        raise SpecError(f"{where}.repo is required: letters, digits, '_' or '-'")
    if not isinstance(glob, str):
        raise SpecError(f"{where}.glob is required")
    written_name = _string(raw, "name", where)
    name = written_name or repo
    if name in ("out", ".env"):
        raise SpecError(f"{where}: input name {name!r} is reserved; set another 'name'")
    try:
        compile_glob(glob)
    except GlobError as error:
        raise SpecError(f"{where}.glob: {error}") from error
    pfs = PfsInput(
        name=name,
        repo=repo,
        branch=_string(raw, "branch", where) or DEFAULT_BRANCH,
        glob=glob,
        join_on=_string(raw, "join_on", where),
        group_by=_string(raw, "group_by", where),
        outer_join=_bool(raw, "outer_join", where),
    )
    return pfs, written_name


def _names(node: InputSpec) -> set[str]:
    return {pfs.name for pfs in iter_pfs(node)}


def _check_composite_names(node: InputSpec) -> None:
    """Input names must differ across the children of cross, join and group."""
    if isinstance(node, PfsInput):
        return
    for child in node.children:
        _check_composite_names(child)
    if node.kind == "union":
        return
    seen: set[str] = set()
    for child in node.children:
        names = _names(child)
        clash = sorted(names & seen)
        if clash:
            raise SpecError(
                f"input name {clash[0]!r} appears twice in a {node.kind}; give one a 'name'"
            )
        seen |= names


def _parse_transform(raw: dict[str, Any]) -> Transform:
    cmd = _string_list(raw.get("cmd"), "transform.cmd")
    if not cmd:
        raise SpecError("transform.cmd must be a non-empty list of strings")
    env = raw.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise SpecError("transform.env must map names to strings")
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise SpecError(
                f"transform.env: {key[:40]!r} is not a usable variable (a name without '=' "
                "and values without NUL characters)"
            )
    codes = raw.get("accept_return_code") or []
    if not isinstance(codes, list):
        raise SpecError("transform.accept_return_code must be a list of integers")
    return Transform(
        cmd=cmd,
        stdin=_optional_lines(raw, "stdin"),
        env=dict(env),
        err_cmd=_string_list(raw.get("err_cmd"), "transform.err_cmd"),
        err_stdin=_optional_lines(raw, "err_stdin"),
        accept_return_code=frozenset(_int64(code, "accept_return_code") for code in codes),
        datum_batching=_bool(raw, "datum_batching", "transform"),
    )


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpecError(f"{where}.{key} must be a string")
    return value


def _bool(raw: dict[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(f"{where}.{key} must be true or false")
    return value


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(f"{where} must be a list of strings")
    if any("\0" in item for item in value):
        raise SpecError(f"{where} must not hold NUL characters")
    return tuple(value)


def _optional_lines(raw: dict[str, Any], key: str) -> tuple[str, ...] | None:
    if key not in raw or raw[key] is None:
        return None
    return _string_list(raw[key], f"transform.{key}")


def _int64(value: Any, where: str) -> int:
    """protojson int64: a JSON number or a decimal string."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value)
    ):
        number = int(value)
    if number is None:
        raise SpecError(f"{where} must be an integer, not {_shown(value)}")
    if number not in _INT64:
        raise SpecError(f"{where} is out of range (a 64-bit integer): {_shown(value)}")
    return number


def _shown(value: Any) -> str:
    """A value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _datum_tries(value: Any) -> int:
    """Total attempts per datum: unset or 0 means 3; a negative value gives 4 attempts."""
    tries = 0 if value is None else _int64(value, "datum_tries")
    if tries == 0:
        return DEFAULT_DATUM_TRIES
    return tries if tries > 0 else DEFAULT_DATUM_TRIES + 1


def _duration(value: Any, where: str) -> float | None:
    """protojson Duration ("600s", "1.5s"); None or a non-positive value means no limit."""
    if value is None:
        return None
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise SpecError(
            f'{where} must be a duration in seconds such as "600s", not {_shown(value)}'
        )
    sign, whole, fraction = match.groups()
    seconds = float(f"{whole}.{fraction or 0}") * (-1 if sign else 1)
    return seconds if seconds > 0 else None


def _datum_set_spec(raw: dict[str, Any]) -> DatumSetSpec:
    values = {
        key: 0 if value is None else _int64(value, f"datum_set_spec.{key}")
        for key, value in raw.items()
    }
    negative = sorted(key for key, value in values.items() if value < 0)
    if negative:
        raise SpecError(f"datum_set_spec.{negative[0]} must not be negative")
    return DatumSetSpec(**values)


def _gpus(raw: dict[str, Any], key: str) -> int:
    resources = _object(raw, key, _RESOURCE_FIELDS)
    gpu = _object(resources, "gpu", _GPU_FIELDS)
    return _int64(gpu.get("number", 0), f"{key}.gpu.number") if gpu else 0
