"""Render every Pachyderm pipeline spec of the bundle from the stage table (stages/table.py).

The JSON under pipelines/ is generated: edit the table, then run this script.

    python scripts/render_pipelines.py                 write pipelines/
    python scripts/render_pipelines.py --check         exit 1 if pipelines/ is stale
    python scripts/render_pipelines.py --out DIR --registry R --tag T
                                                       render for another registry/tag
    python scripts/render_pipelines.py --images        "<docker target> <image>" lines
    python scripts/render_pipelines.py --default tag   a default, for bundle.mk
    python scripts/render_pipelines.py --source-repos  the input repos to create, for bundle.mk

Variants (one folder each, one file per pipeline):
    pipelines/                 Pachyderm 2.x, GPU limits on the torch stages
    pipelines/cpu/             Pachyderm 2.x, no GPU anywhere
    pipelines/single-stage/    Pachyderm 2.x, one pipeline running every stage per exam
    pipelines/pachyderm-1.x/   the default DAG with Pachyderm 1.x field names

Pure standard library, so that `make` can run it with any python3.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PIPELINES_DIR = REPO / "pipelines"
sys.path.insert(0, str(REPO))  # stages.table is standard library only: no install needed

from stages.table import (  # noqa: E402
    ALL_STAGES,
    DAG,
    SINGLE_STAGE,
    SOURCE_REPOS,
    Cross,
    Input,
    JoinExams,
    PerExam,
    Stage,
    Whole,
)

DEFAULT_REGISTRY = "docker.io/breastcancerpachyderm"
DEFAULT_TAG = "0.1.0"

VARIANTS = ("", "cpu", "single-stage", "pachyderm-1.x")  # "" is the default, pipelines/ itself
GPU = {"type": "nvidia.com/gpu", "number": 1}
DATUM_TRIES = 3


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


def transform_env(stage: Stage, device: str) -> dict[str, str]:
    if not stage.torch:
        return dict(stage.env)
    # Torch sizes its thread pool to the node's cores, not the pod's share.
    threads = str(max(1, math.ceil(stage.resources.cpu)))
    return {"BCD_DEVICE": device, "BCD_TORCH_THREADS": threads, **stage.env}


def spec_v2(stage: Stage, registry: str, tag: str, *, gpu: bool) -> dict[str, Any]:
    """A Pachyderm 2.x CreatePipelineRequest, snake_case keys."""
    resources = stage.resources
    on_gpu = gpu and stage.torch
    transform: dict[str, Any] = {
        "image": image_ref(stage.image, registry, tag),
        "cmd": list(stage.command),
    }
    env = transform_env(stage, "auto" if gpu else "cpu")
    if env:
        transform["env"] = env
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
    if stage.torch:
        # Idle torch pipelines scale to zero workers and so hold no GPU or memory.
        spec["autoscaling"] = True
    return spec


def spec_v1(spec: dict[str, Any]) -> dict[str, Any]:
    """The 2.x spec in Pachyderm 1.x terms: `standby` where 2.x has `autoscaling`."""
    converted = {key: value for key, value in spec.items() if key != "autoscaling"}
    if spec.get("autoscaling"):
        converted["standby"] = True
    return converted


def render_all(registry: str = DEFAULT_REGISTRY, tag: str = DEFAULT_TAG) -> dict[str, str]:
    """Every spec file's path (relative to pipelines/) mapped to its JSON text."""
    specs: dict[str, dict[str, Any]] = {}
    for stage in DAG:
        default = spec_v2(stage, registry, tag, gpu=True)
        specs[f"{stage.name}.json"] = default
        specs[f"cpu/{stage.name}.json"] = spec_v2(stage, registry, tag, gpu=False)
        specs[f"pachyderm-1.x/{stage.name}.json"] = spec_v1(default)
    specs[f"single-stage/{SINGLE_STAGE.name}.json"] = spec_v2(SINGLE_STAGE, registry, tag, gpu=True)
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
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if --out is not current")
    mode.add_argument("--images", action="store_true", help="print '<target> <image>' lines")
    mode.add_argument("--default", choices=("registry", "tag"), help="print one default")
    mode.add_argument("--source-repos", action="store_true", help="print the input repos")
    args = parser.parse_args(argv)

    if args.default:
        print(DEFAULT_REGISTRY if args.default == "registry" else DEFAULT_TAG)
        return 0
    if args.source_repos:
        print(" ".join(SOURCE_REPOS))
        return 0
    if args.images:
        for target in image_targets():
            print(target, image_ref(target, args.registry, args.tag))
        return 0
    rendered = render_all(args.registry, args.tag)
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
