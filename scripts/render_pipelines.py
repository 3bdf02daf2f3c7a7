"""Render every Pachyderm pipeline spec of the bundle from the tables below.

The JSON under pipelines/ is generated: edit the tables here, then run this script.

    python scripts/render_pipelines.py                 write pipelines/
    python scripts/render_pipelines.py --check         exit 1 if pipelines/ is stale
    python scripts/render_pipelines.py --out DIR --registry R --tag T
                                                       render for another registry/tag
    python scripts/render_pipelines.py --images        "<docker target> <image>" lines
    python scripts/render_pipelines.py --default tag   a default, for bundle.mk

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PIPELINES_DIR = REPO / "pipelines"

DEFAULT_REGISTRY = "docker.io/breastcancerpachyderm"
DEFAULT_TAG = "0.1.0"

VARIANTS = ("", "cpu", "single-stage", "pachyderm-1.x")  # "" is the default, pipelines/ itself
GPU = {"type": "nvidia.com/gpu", "number": 1}
DATUM_TRIES = 3
TTA_EPOCHS = "10"


@dataclass(frozen=True)
class Resources:
    """Per-worker figures: Kubernetes requests and the datum timeouts (GPU, CPU-only)."""

    memory: str
    cpu: float
    timeout_gpu_s: int
    timeout_cpu_s: int


# Memory: peak RSS of each stage's process on one full-size exam (demo-0001, 4 views of
# 3328 x 2560), measured 2026-11-25 on an AMD EPYC with 2 threads (docs/performance.md):
# crop 232 MiB, extract_centers 80 MiB, generate_heatmaps 1.9 GiB (batch 32),
# classify 1.8 GiB (both models), visualize 375 MiB, summary 51 MiB (one exam). Requests
# leave 1.5-2x headroom; the torch stages' also covers a CUDA context's host memory on
# GPU nodes. Re-measure with `bcd bench` after changing a stage, and update here.
RESOURCES: dict[str, Resources] = {
    "crop": Resources("512M", 1, 600, 600),
    "extract_centers": Resources("256M", 1, 600, 600),
    "generate_heatmaps": Resources("3G", 2, 1800, 7200),
    "classify": Resources("3G", 2, 1800, 7200),
    "visualize": Resources("768M", 1, 600, 600),
    "summary": Resources("256M", 0.5, 600, 600),
    "breast_cancer": Resources("4G", 2, 3600, 14400),
}


@dataclass(frozen=True)
class Pipeline:
    """One pipeline: its name (= output repo), entrypoint module, image and input."""

    name: str
    module: str
    image: str  # Dockerfile target, and the image's name in the registry
    torch: bool  # runs a network: GPU-capable image, GPU limit in the default variant
    input: dict[str, Any]
    description: str


def pfs(repo: str, glob: str, join_on: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"repo": repo, "glob": glob}
    if join_on is not None:
        spec["join_on"] = join_on
    return {"pfs": spec}


def per_exam(repo: str) -> dict[str, Any]:
    """One datum per top-level directory (= exam) of the repo."""
    return pfs(repo, "/*")


def join_exams(*repos: str) -> dict[str, Any]:
    """One datum per exam present in every repo: each exam's directories side by side."""
    return {"join": [pfs(repo, "/(*)", "$1") for repo in repos]}


def cross(*inputs: dict[str, Any]) -> dict[str, Any]:
    return {"cross": list(inputs)}


def whole(repo: str) -> dict[str, Any]:
    """The whole repo in every datum."""
    return pfs(repo, "/")


# The DAG, in dependency order.
DAG = (
    Pipeline(
        "crop",
        "stages.crop",
        "crop",
        False,
        per_exam("sample_data"),
        "Crop each mammogram to the breast; drop labels and markers.",
    ),
    Pipeline(
        "extract_centers",
        "stages.extract_centers",
        "extract-centers",
        False,
        per_exam("crop"),
        "Find the best crop centre of each cropped image.",
    ),
    Pipeline(
        "generate_heatmaps",
        "stages.generate_heatmaps",
        "generate-heatmaps",
        True,
        cross(join_exams("crop", "extract_centers"), whole("models")),
        "Benign and malignant patch-classifier heatmaps per image.",
    ),
    Pipeline(
        "classify",
        "stages.classify",
        "classify",
        True,
        cross(join_exams("crop", "extract_centers", "generate_heatmaps"), whole("models")),
        "Exam-level benign/malignant predictions (image and image+heatmaps models).",
    ),
    Pipeline(
        "visualize",
        "stages.visualize",
        "visualize",
        False,
        join_exams("crop", "generate_heatmaps", "classify"),
        "Heatmap overlays and an HTML report per exam.",
    ),
    Pipeline(
        "summary",
        "stages.summary",
        "summary",
        False,
        cross(whole("classify"), whole("visualize")),
        "predictions.csv over all exams, failed exams, index.html of every report.",
    ),
)

SINGLE_STAGE = Pipeline(
    "breast_cancer",
    "stages.single_stage",
    "single-stage",
    True,
    cross(per_exam("sample_data"), whole("models")),
    "Every stage in sequence on one exam per datum.",
)


def image_ref(target: str, registry: str, tag: str) -> str:
    return f"{registry}/{target}:{tag}"


def image_targets() -> list[str]:
    """Every Dockerfile target that becomes a pushed image, in DAG order."""
    return [p.image for p in (*DAG, SINGLE_STAGE)]


def transform_env(pipeline: Pipeline, device: str) -> dict[str, str]:
    if not pipeline.torch:
        return {}
    # Torch sizes its thread pool to the node's cores, not the pod's share.
    threads = str(max(1, math.ceil(RESOURCES[pipeline.name].cpu)))
    env = {"BCD_DEVICE": device, "BCD_TORCH_THREADS": threads}
    if pipeline.name != "generate_heatmaps":
        env["BCD_EPOCHS"] = TTA_EPOCHS
    return env


def spec_v2(pipeline: Pipeline, registry: str, tag: str, *, gpu: bool) -> dict[str, Any]:
    """A Pachyderm 2.x CreatePipelineRequest, snake_case keys."""
    resources = RESOURCES[pipeline.name]
    on_gpu = gpu and pipeline.torch
    transform: dict[str, Any] = {
        "image": image_ref(pipeline.image, registry, tag),
        "cmd": ["python3", "-m", pipeline.module],
    }
    env = transform_env(pipeline, "auto" if gpu else "cpu")
    if env:
        transform["env"] = env
    spec: dict[str, Any] = {
        "pipeline": {"name": pipeline.name},
        "description": pipeline.description,
        "transform": transform,
        "input": pipeline.input,
        "parallelism_spec": {"constant": 1},
        "resource_requests": {"memory": resources.memory, "cpu": resources.cpu},
    }
    if on_gpu:
        spec["resource_limits"] = {"gpu": dict(GPU)}
    timeout = resources.timeout_gpu_s if on_gpu else resources.timeout_cpu_s
    spec["datum_timeout"] = f"{timeout}s"
    spec["datum_tries"] = DATUM_TRIES
    if pipeline.torch:
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
    for pipeline in DAG:
        default = spec_v2(pipeline, registry, tag, gpu=True)
        specs[f"{pipeline.name}.json"] = default
        specs[f"cpu/{pipeline.name}.json"] = spec_v2(pipeline, registry, tag, gpu=False)
        specs[f"pachyderm-1.x/{pipeline.name}.json"] = spec_v1(default)
    specs[f"single-stage/{SINGLE_STAGE.name}.json"] = spec_v2(SINGLE_STAGE, registry, tag, gpu=True)
    return {path: json.dumps(spec, indent=2) + "\n" for path, spec in specs.items()}


def existing_specs(out_dir: Path) -> set[str]:
    """The spec files now in the rendered folders (relative paths)."""
    found = set()
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
    args = parser.parse_args(argv)

    if args.default:
        print(DEFAULT_REGISTRY if args.default == "registry" else DEFAULT_TAG)
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
