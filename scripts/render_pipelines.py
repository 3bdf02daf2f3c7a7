"""Render every Pachyderm pipeline spec of the bundle from the stage table (stages/table.py).

The JSON under pipelines/ is generated: edit the table, then run this script.

    python scripts/render_pipelines.py                 write pipelines/
    python scripts/render_pipelines.py --check         exit 1 if pipelines/ is stale
    python scripts/render_pipelines.py --out DIR --registry R --tag T
                                                       render for another registry/tag
    python scripts/render_pipelines.py --images        "<docker target> <image>" lines
    python scripts/render_pipelines.py --default tag   the tag images get: the commit
                                                       (git describe), for bundle.mk
    python scripts/render_pipelines.py --gpu-tolerations nvidia.com/gpu:NoSchedule \
        --gpu-node-selector pool=gpu                   GPU pipelines on a tainted pool
    python scripts/render_pipelines.py --source-repos  the input repos to create, for bundle.mk

Variants (one folder each, one file per pipeline):
    pipelines/                 Pachyderm 2.x, GPU limits on the torch stages, which batch
                               datums (pachd >= 2.5)
    pipelines/cpu/             Pachyderm 2.x, no GPU anywhere, torch stages batched
    pipelines/single-stage/    Pachyderm 2.x, one batched pipeline running every stage per exam
    pipelines/pachyderm-1.x/   the default DAG with Pachyderm 1.x field names, no batching

Pure standard library, so that `make` can run it with any python3.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PIPELINES_DIR = REPO / "pipelines"
sys.path.insert(0, str(REPO))  # stages.table is standard library only: no install needed

from stages import __version__  # noqa: E402
from stages.table import (  # noqa: E402
    ALL_STAGES,
    DAG,
    DATUM_BATCHING_ENV,
    SINGLE_STAGE,
    SOURCE_REPOS,
    Cross,
    Input,
    JoinExams,
    PerExam,
    Stage,
    WarmExam,
    Whole,
)

DEFAULT_REGISTRY = "docker.io/breastcancerpachyderm"
# The committed specs carry the project version; images built and deployed are tagged by
# commit (build_tag), since workers pull IfNotPresent and would keep a rebuilt image's
# old code under an unchanged tag.
DEFAULT_TAG = __version__
# The images' non-root user (docker/Dockerfile's USER): Pachyderm runs the pod as it.
IMAGE_UID = "10001"

VARIANTS = ("", "cpu", "single-stage", "pachyderm-1.x")  # "" is the default, pipelines/ itself
GPU = {"type": "nvidia.com/gpu", "number": 1}
DATUM_TRIES = 3
# How long a datum set of a batched pipeline lasts, in warm exams (README, "Warm workers"):
# long enough that the stage's start-up (~25 s for the two GPU stages) is paid once per
# hundreds of GPU exams, short enough that a set lost with its pod (a set's outputs are
# kept only when the whole set is done) is at most this much work.
DATUM_SET_SECONDS = 600


# Kubernetes' spelling of a taint effect -> Pachyderm's enum name.
TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
TOLERATION = re.compile(r"(?P<key>[^=:,\s]+)(?:=(?P<value>[^=:,\s]*))?:(?P<effect>\w+)")
LABEL = re.compile(r"(?P<key>[^=,\s]+)=(?P<value>[^=,\s]*)")


class RenderError(ValueError):
    """A rendering option that cannot be turned into a valid spec; says how to write it."""


@dataclass(frozen=True)
class GpuPlacement:
    """Where the GPU pipelines may run: tolerations of tainted nodes, a node selector."""

    tolerations: tuple[dict[str, str], ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)


def parse_tolerations(text: str) -> tuple[dict[str, str], ...]:
    """`key[=value]:Effect,...` as Pachyderm tolerations: no value means EXISTS."""
    tolerations = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = TOLERATION.fullmatch(item)
        if match is None or match["effect"] not in TAINT_EFFECTS:
            raise RenderError(
                f"GPU_TOLERATIONS: {item!r} is not key[=value]:Effect with Effect one of "
                f"{', '.join(TAINT_EFFECTS)} (e.g. nvidia.com/gpu:NoSchedule)"
            )
        toleration = {"key": match["key"], "operator": "EXISTS"}
        if match["value"] is not None:
            toleration = {"key": match["key"], "operator": "EQUAL", "value": match["value"]}
        tolerations.append({**toleration, "effect": TAINT_EFFECTS[match["effect"]]})
    return tuple(tolerations)


def parse_node_selector(text: str) -> dict[str, str]:
    """`key=value,...` as a node selector."""
    selector = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = LABEL.fullmatch(item)
        if match is None:
            raise RenderError(
                f"GPU_NODE_SELECTOR: {item!r} is not key=value (e.g. cloud.google.com/"
                "gke-accelerator=nvidia-h100-80gb)"
            )
        selector[match["key"]] = match["value"]
    return selector


def build_tag() -> str:
    """The tag for images built from this checkout: `git describe --always --dirty`.

    Outside a git checkout, the project version, with a warning: a rebuild then reuses
    the tag, and nodes that already pulled it keep running the old code.
    """
    try:
        described = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        described = ""
    if described:
        return described
    print(
        f"warning: not a git checkout: images tagged {__version__}; pass TAG=... so that a "
        "rebuilt image gets a new tag (workers pull IfNotPresent)",
        file=sys.stderr,
    )
    return __version__


def pfs(repo: str, glob: str, join_on: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"repo": repo, "glob": glob}
    if join_on is not None:
        spec["join_on"] = join_on
    return {"pfs": spec}


def input_spec(spec: Input) -> dict[str, Any]:
    """The table's input as Pachyderm's input JSON."""
    if isinstance(spec, PerExam):
        return pfs(spec.repo, "/*")
    if isinstance(spec, Whole):
        return pfs(spec.repo, "/")
    if isinstance(spec, JoinExams):
        return {"join": [pfs(repo, "/(*)", "$1") for repo in spec.repos]}
    assert isinstance(spec, Cross)
    return {"cross": [input_spec(part) for part in spec.parts]}


def image_ref(target: str, registry: str, tag: str) -> str:
    return f"{registry}/{target}:{tag}"


def image_targets() -> list[str]:
    """Every Dockerfile target that becomes a pushed image, in DAG order."""
    return [stage.image for stage in ALL_STAGES]


def transform_env(stage: Stage, device: str, batched: bool) -> dict[str, str]:
    env = dict(stage.env)
    if batched:
        env[DATUM_BATCHING_ENV] = "1"
    if not stage.torch:
        return env
    # Torch sizes its thread pool to the node's cores, not the pod's share.
    threads = str(max(1, math.ceil(stage.resources.cpu)))
    return {"BCD_DEVICE": device, "BCD_TORCH_THREADS": threads, **env}


def exams_per_set(warm: WarmExam, gpu: bool) -> int:
    """Exams (= datums) per datum set: DATUM_SET_SECONDS of warm exams, at least 1."""
    return max(1, round(DATUM_SET_SECONDS / (warm.gpu_s if gpu else warm.cpu_s)))


def spec_v2(
    stage: Stage,
    registry: str,
    tag: str,
    *,
    gpu: bool,
    placement: GpuPlacement | None = None,
    datum_batching: bool = True,
) -> dict[str, Any]:
    """A Pachyderm 2.x CreatePipelineRequest, snake_case keys.

    `datum_batching`: batch the stages the table batches (pachd >= 2.5); False renders
    every stage one process per datum.
    """
    resources = stage.resources
    on_gpu = gpu and stage.torch
    batching = stage.batching if datum_batching else None
    transform: dict[str, Any] = {
        "image": image_ref(stage.image, registry, tag),
        "cmd": list(stage.command),
        "user": IMAGE_UID,
    }
    env = transform_env(stage, "auto" if gpu else "cpu", batched=batching is not None)
    if env:
        transform["env"] = env
    if batching is not None:
        transform["datum_batching"] = True
    spec: dict[str, Any] = {
        "pipeline": {"name": stage.name},
        "description": stage.description,
        "transform": transform,
        "input": input_spec(stage.input),
        "parallelism_spec": {"constant": 1},
        "resource_requests": {"memory": resources.memory, "cpu": resources.cpu},
    }
    if on_gpu:
        spec["resource_limits"] = {"gpu": dict(GPU)}
    timeout = resources.timeout_gpu_s if on_gpu else resources.timeout_cpu_s
    spec["datum_timeout"] = f"{timeout}s"
    spec["datum_tries"] = DATUM_TRIES
    if batching is not None:
        spec["datum_set_spec"] = {"number": exams_per_set(batching, on_gpu)}
    if on_gpu and placement is not None:
        if placement.tolerations:
            spec["tolerations"] = [dict(t) for t in placement.tolerations]
        if placement.node_selector:
            spec["scheduling_spec"] = {"node_selector": dict(placement.node_selector)}
    # Idle pipelines scale to zero workers and so hold no GPU or memory requests; the
    # cost is a pod start (seconds) when new data arrives, small beside a datum.
    spec["autoscaling"] = True
    return spec


def spec_v1(spec: dict[str, Any]) -> dict[str, Any]:
    """The 2.x spec (rendered without datum batching, a 2.5 feature) in Pachyderm 1.x terms:
    `standby` where 2.x has `autoscaling`.

    1.x has no `tolerations` field (a node selector it has): on a tainted 1.x pool add
    them through `pod_patch` by hand.
    """
    converted = {
        key: value for key, value in spec.items() if key not in ("autoscaling", "tolerations")
    }
    if spec.get("autoscaling"):
        converted["standby"] = True
    return converted


def render_all(
    registry: str = DEFAULT_REGISTRY,
    tag: str = DEFAULT_TAG,
    placement: GpuPlacement | None = None,
) -> dict[str, str]:
    """Every spec file's path (relative to pipelines/) mapped to its JSON text."""
    specs: dict[str, dict[str, Any]] = {}
    for stage in DAG:
        default = spec_v2(stage, registry, tag, gpu=True, placement=placement)
        specs[f"{stage.name}.json"] = default
        specs[f"cpu/{stage.name}.json"] = spec_v2(stage, registry, tag, gpu=False)
        specs[f"pachyderm-1.x/{stage.name}.json"] = spec_v1(
            spec_v2(stage, registry, tag, gpu=True, placement=placement, datum_batching=False)
        )
    specs[f"single-stage/{SINGLE_STAGE.name}.json"] = spec_v2(
        SINGLE_STAGE, registry, tag, gpu=True, placement=placement
    )
    return {path: json.dumps(spec, indent=2) + "\n" for path, spec in specs.items()}


def existing_specs(out_dir: Path) -> set[str]:
    """The spec files now in the rendered folders (relative paths)."""
    found: set[str] = set()
    for variant in VARIANTS:
        folder = out_dir / variant
        if folder.is_dir():
            found.update(str(p.relative_to(out_dir)) for p in folder.glob("*.json"))
    return found


def stale_files(out_dir: Path, rendered: dict[str, str]) -> list[str]:
    """Files that differ from the rendering, are missing, or should not be there."""
    stale = [
        path
        for path, text in rendered.items()
        if not (out_dir / path).is_file() or (out_dir / path).read_text() != text
    ]
    return sorted(stale + sorted(existing_specs(out_dir) - rendered.keys()))


def write(out_dir: Path, rendered: dict[str, str]) -> None:
    for path in existing_specs(out_dir) - rendered.keys():
        (out_dir / path).unlink()
    for path, text in rendered.items():
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text() != text:
            target.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PIPELINES_DIR, help="default: pipelines/")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument(
        "--gpu-tolerations",
        default="",
        metavar="KEY[=VALUE]:EFFECT,...",
        help="tolerations of the GPU pipelines, e.g. nvidia.com/gpu:NoSchedule",
    )
    parser.add_argument(
        "--gpu-node-selector",
        default="",
        metavar="KEY=VALUE,...",
        help="node labels the GPU pipelines' pods must match",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if --out is not current")
    mode.add_argument("--images", action="store_true", help="print '<target> <image>' lines")
    mode.add_argument("--default", choices=("registry", "tag"), help="print one default")
    mode.add_argument("--source-repos", action="store_true", help="print the input repos")
    args = parser.parse_args(argv)

    if args.default:
        print(DEFAULT_REGISTRY if args.default == "registry" else build_tag())
        return 0
    if args.source_repos:
        print(" ".join(SOURCE_REPOS))
        return 0
    if args.images:
        for target in image_targets():
            print(target, image_ref(target, args.registry, args.tag))
        return 0
    try:
        placement = GpuPlacement(
            parse_tolerations(args.gpu_tolerations), parse_node_selector(args.gpu_node_selector)
        )
    except RenderError as error:
        print(f"render_pipelines: {error}", file=sys.stderr)
        return 2
    rendered = render_all(args.registry, args.tag, placement)
    if args.check:
        stale = stale_files(args.out, rendered)
        for path in stale:
            print(f"stale: {args.out / path}", file=sys.stderr)
        if stale:
            print("run: python scripts/render_pipelines.py", file=sys.stderr)
        return 1 if stale else 0
    write(args.out, rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
