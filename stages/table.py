"""The stage table: every pipeline of the bundle, its inputs, image, hardware and resources.

The one place where a pipeline, repo or input name is written. The specs' renderer
(scripts/render_pipelines.py), `single_stage`, the `bcd` CLI, the bench and the stages
themselves read it. Pure standard library, so that `make` can render specs with any python3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Input repos the user fills.
SAMPLE_DATA = "sample_data"
MODELS = "models"
SOURCE_REPOS = (SAMPLE_DATA, MODELS)

# Pipelines; each one's name is also its output repo, read by the stages after it.
CROP = "crop"
EXTRACT_CENTERS = "extract_centers"
GENERATE_HEATMAPS = "generate_heatmaps"
CLASSIFY = "classify"
VISUALIZE = "visualize"
SUMMARY = "summary"
BREAST_CANCER = "breast_cancer"  # the single-stage variant's one pipeline


@dataclass(frozen=True)
class PerExam:
    """One datum per top-level directory (= exam) of the repo."""

    repo: str


@dataclass(frozen=True)
class Whole:
    """The whole repo in every datum."""

    repo: str


@dataclass(frozen=True)
class JoinExams:
    """One datum per exam present in every repo: each exam's directories side by side."""

    repos: tuple[str, ...]


@dataclass(frozen=True)
class Cross:
    """Every combination of the parts' datums."""

    parts: tuple[Input, ...]


Input = PerExam | Whole | JoinExams | Cross


def input_repos(spec: Input) -> tuple[str, ...]:
    """The repos an input reads, in the order the spec names them."""
    if isinstance(spec, PerExam | Whole):
        return (spec.repo,)
    if isinstance(spec, JoinExams):
        return spec.repos
    return tuple(repo for part in spec.parts for repo in input_repos(part))


@dataclass(frozen=True)
class Resources:
    """Per-worker figures: Kubernetes requests and the datum timeouts (GPU, CPU-only)."""

    memory: str
    cpu: float
    timeout_gpu_s: int
    timeout_cpu_s: int


# Set in transform.env of a batched pipeline: the stage then serves datums through the
# worker API (stages/batching.py). PPS_WORKER_GRPC_PORT alone cannot say so: Pachyderm sets
# it in every worker, batched or not.
DATUM_BATCHING_ENV = "BCD_DATUM_BATCHING"


@dataclass(frozen=True)
class WarmExam:
    """Seconds one full-size exam takes in a warm worker (set-up done), which size datum sets.

    A batched worker (transform.datum_batching, pachd >= 2.5) starts the stage once per datum
    set; the renderer makes each set about DATUM_SET_SECONDS of these exams long.
    """

    gpu_s: float
    cpu_s: float  # on 2 cores, the request of the torch stages


@dataclass(frozen=True)
class Stage:
    """One pipeline: name (= output repo), entrypoint, image, hardware, input, resources."""

    name: str
    module: str  # the entrypoint: python3 -m stages.<module>
    image: str  # Dockerfile target, and the image's name in the registry
    torch: bool  # runs a network: GPU-capable image, GPU limit in the default variant
    input: Input
    resources: Resources
    description: str
    env: Mapping[str, str] = field(default_factory=dict)  # transform.env beyond device/threads
    batching: WarmExam | None = None  # None: one process per datum (no datum batching)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input names the stage finds under /pfs."""
        return input_repos(self.input)

    @property
    def command(self) -> tuple[str, ...]:
        """The spec's transform.cmd and the image's CMD."""
        return ("python3", "-m", f"stages.{self.module}")


# The reference averages ten test-time augmentation epochs.
TTA_ENV = {"BCD_EPOCHS": "10"}

# Warm seconds per full-size exam (WarmExam). GPU: the steady-state target for an exam
# through both GPU stages, 3 s on an H100 (issue #13), taken for each stage alone, a bound
# until #13 (c) measures them apart; the single stage adds crop, centres and visualize on
# the CPU (1.1 + 0.3 + 5.6 s in docs/performance.md): 10 s. 2 CPU cores: the fresh-process
# figures of docs/performance.md less the ~4 s start-up of a torch stage: generate_heatmaps
# 206 -> 200 s, classify 29 -> 25 s, every stage of the single stage 235 s.
#
# Memory: peak RSS of each stage's process on one full-size exam (demo-0001, 4 views of
# 3328 x 2560), measured 2026-11-25 on an AMD EPYC with 2 threads (docs/performance.md):
# crop 232 MiB, extract_centers 80 MiB, generate_heatmaps 1.9 GiB (batch 32),
# classify 1.8 GiB (both models), visualize 375 MiB, summary 51 MiB (one exam). Requests
# leave 1.5-2x headroom; the torch stages' also covers a CUDA context's host memory on
# GPU nodes. On the OpenVINO backend (the CPU default for the patch network, batches of 8),
# measured 2026-12-01 on this project's 2-core VM (Intel Xeon): generate_heatmaps 1.45 GiB,
# the single stage 2.20 GiB. Re-measure with `bcd bench` after changing a stage, and
# update here.
DAG: tuple[Stage, ...] = (
    Stage(
        CROP,
        "crop",
        "crop",
        False,
        PerExam(SAMPLE_DATA),
        Resources("512M", 1, 600, 600),
        "Crop each mammogram to the breast; drop labels and markers.",
    ),
    Stage(
        EXTRACT_CENTERS,
        "extract_centers",
        "extract-centers",
        False,
        PerExam(CROP),
        Resources("256M", 1, 600, 600),
        "Find the best crop centre of each cropped image.",
    ),
    Stage(
        GENERATE_HEATMAPS,
        "generate_heatmaps",
        "generate-heatmaps",
        True,
        Cross((JoinExams((CROP, EXTRACT_CENTERS)), Whole(MODELS))),
        Resources("3G", 2, 1800, 7200),
        "Benign and malignant patch-classifier heatmaps per image.",
        batching=WarmExam(gpu_s=3, cpu_s=200),
    ),
    Stage(
        CLASSIFY,
        "classify",
        "classify",
        True,
        Cross((JoinExams((CROP, EXTRACT_CENTERS, GENERATE_HEATMAPS)), Whole(MODELS))),
        Resources("3G", 2, 1800, 7200),
        "Exam-level benign/malignant predictions (image and image+heatmaps models).",
        TTA_ENV,
        batching=WarmExam(gpu_s=3, cpu_s=25),
    ),
    Stage(
        VISUALIZE,
        "visualize",
        "visualize",
        False,
        JoinExams((CROP, GENERATE_HEATMAPS, CLASSIFY)),
        Resources("768M", 1, 600, 600),
        "Heatmap overlays and an HTML report per exam.",
    ),
    Stage(
        SUMMARY,
        "summary",
        "summary",
        False,
        Cross((Whole(CLASSIFY), Whole(VISUALIZE))),
        Resources("256M", 0.5, 600, 600),
        "predictions.csv over all exams, failed exams, index.html of every report.",
    ),
)

SINGLE_STAGE = Stage(
    BREAST_CANCER,
    "single_stage",
    "single-stage",
    True,
    Cross((PerExam(SAMPLE_DATA), Whole(MODELS))),
    Resources("4G", 2, 3600, 14400),
    "Every stage in sequence on one exam per datum.",
    TTA_ENV,
    batching=WarmExam(gpu_s=10, cpu_s=235),
)

# What `single_stage` runs on its one exam, in order: every per-exam stage of the DAG
# (summary is over all exams, so it has no place in a one-exam datum).
SINGLE_STAGE_STEPS: tuple[Stage, ...] = tuple(stage for stage in DAG if stage.name != SUMMARY)

ALL_STAGES: tuple[Stage, ...] = (*DAG, SINGLE_STAGE)


def stage(name: str) -> Stage:
    """The table's entry for a pipeline name."""
    for entry in ALL_STAGES:
        if entry.name == name:
            return entry
    raise KeyError(f"no stage named {name!r}: one of {', '.join(s.name for s in ALL_STAGES)}")
