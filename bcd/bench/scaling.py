"""Time per exam through `bcd run` as the number of exams and workers grows."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bcd.bench.processes import Measured, run_measured


@dataclass(frozen=True)
class PipelineRun:
    """One `bcd run` over `exams` exams with `workers` parallel datums."""

    exams: int
    workers: int
    measured: Measured
    pipeline_seconds: dict[str, float]

    @property
    def seconds_per_exam(self) -> float:
        return self.measured.seconds / self.exams


def run_pipeline(
    data: Path,
    models: Path,
    pipelines: Path,
    out: Path,
    workers: int,
    env: Mapping[str, str],
    log: Path,
    overrides: Mapping[str, str],
) -> PipelineRun:
    """Every pipeline of `pipelines` over the exams in `data`, as `bcd run` does it.

    `overrides` go to every datum with `--env` (e.g. fewer epochs for --quick).
    """
    summary = out / "run-summary.json"
    argv = [
        sys.executable, "-m", "bcd.cli", "run",
        "--data", str(data),
        "--models", str(models),
        "--pipelines", str(pipelines),
        "--out", str(out),
        "--workers", str(workers),
        "--summary-json", str(summary),
    ]  # fmt: skip
    for key, value in overrides.items():
        argv += ["--env", f"{key}={value}"]
    measured = run_measured(argv, log, env=env)
    jobs = json.loads(summary.read_text()).get("pipelines", [])
    exams = sum(1 for path in data.iterdir() if path.is_dir())
    return PipelineRun(exams, workers, measured, {job["pipeline"]: job["seconds"] for job in jobs})
