"""Torch against OpenVINO: the patch network alone per backend, and generate_heatmaps on a
busy CPU (issue 14: torch's OpenMP threads degrade far worse than OpenVINO's when another
process shares the cores, as it usually does on a Pachyderm node).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bcd.bench import exams, network, ours
from bcd.bench.processes import CommandFailed, Measured, thread_env
from stages.core.patches import PATCH_SIZE
from stages.nets.runtime import (
    OPENVINO_BACKEND,
    OPENVINO_CACHE_ENV,
    TORCH_BACKEND,
    Precision,
    TorchSetup,
    backend_version,
    on_backend,
)
from stages.table import GENERATE_HEATMAPS, MODELS, SAMPLE_DATA

BACKENDS = (TORCH_BACKEND, OPENVINO_BACKEND)
LOADS = ("quiet", "busy")
# A pure-Python loop keeping one core 100% busy; it ends by itself should the bench die
# without killing it (its parent, argv[1], gone).
SPIN = "import os, sys\nparent = int(sys.argv[1])\nwhile os.getppid() == parent:\n    pass\n"


def network_throughput(
    model: torch.nn.Module,
    patches: np.ndarray,
    batch_size: int,
    precision: Precision,
    backend: str,
    threads: int,
    conversion_cache: Path | None,
) -> float:
    """Patches/s of `model` on `backend` at `precision`, built as generate_heatmaps builds it
    (OpenVINO: converted, or read from `conversion_cache`, and compiled for
    (batch_size, 3, 256, 256), before any timing)."""
    device = torch.device("cpu")
    setup = TorchSetup(device, precision, threads, backend, GENERATE_HEATMAPS, conversion_cache)
    runnable = on_backend(model, (batch_size, 3, PATCH_SIZE, PATCH_SIZE), setup)
    return network.patches_per_second(runnable, patches, batch_size, precision, device)


def versions() -> dict[str, str]:
    """The installed version of each backend's package."""
    return {backend: backend_version(backend) for backend in BACKENDS}


@contextlib.contextmanager
def busy_process() -> Iterator[subprocess.Popen[bytes]]:
    """Another process spinning on the cores while the block runs; killed (and reaped) when
    it ends, however it ends."""
    spinner = subprocess.Popen(
        [sys.executable, "-c", SPIN, str(os.getpid())], stdin=subprocess.DEVNULL
    )
    try:
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()


def run_under_load(
    load: str, stage: str, pfs: Path, log: Path, env: dict[str, str], flags: list[str]
) -> Measured:
    """`stage` in a fresh process, alone ('quiet') or beside a busy process ('busy')."""
    if load == "quiet":
        return ours.run_stage(stage, pfs, log, env, flags)
    with busy_process() as spinner:
        measured = ours.run_stage(stage, pfs, log, env, flags)
        if spinner.poll() is not None:
            raise CommandFailed(f"the busy process exited ({spinner.returncode}) before {stage}")
    return measured


def measure_busy_cpu(exam_dir: Path, models: Path, work: Path, threads: int) -> dict[str, Any]:
    """generate_heatmaps (fp32, CPU) on `exam_dir` with each backend, quiet and beside one busy
    process: seconds, slow-down (busy / quiet), OpenVINO's speed-up over torch.

    Crop and centres run once; every heatmap run is a fresh stage process. OpenVINO's
    networks come from a conversion cache filled by one untimed run first, as on a worker's
    later datums: what is compared is the network under load, not a conversion.
    """
    env = {**thread_env(threads), OPENVINO_CACHE_ENV: str(work / "openvino-cache")}
    data = work / SAMPLE_DATA
    exams.copy_exam(exam_dir, data / exam_dir.name)
    pfs = ours.link_inputs(work / "pfs", {SAMPLE_DATA: data, MODELS: models})
    log = work / "busy.log"
    for stage in ours.PREP_STAGES:
        ours.run_stage(stage, pfs, log, env)
    fill_cache = ["--device", "cpu", "--precision", "fp32", "--backend", OPENVINO_BACKEND]
    ours.run_stage(GENERATE_HEATMAPS, pfs, log, env, fill_cache)
    seconds: dict[str, dict[str, float]] = {backend: {} for backend in BACKENDS}
    for load in LOADS:
        for backend in BACKENDS:
            print(f"bcd bench: busy CPU: {backend}, {load}", file=sys.stderr, flush=True)
            flags = ["--device", "cpu", "--precision", "fp32", "--backend", backend]
            measured = run_under_load(load, GENERATE_HEATMAPS, pfs, log, env, flags)
            seconds[backend][load] = measured.seconds
    torch_s, openvino_s = seconds[TORCH_BACKEND], seconds[OPENVINO_BACKEND]
    return {
        "stage": GENERATE_HEATMAPS,
        "exam": exam_dir.name,
        "threads": threads,
        "busy_processes": 1,
        "seconds": seconds,
        "slowdown": {backend: row["busy"] / row["quiet"] for backend, row in seconds.items()},
        "openvino_speedup": {load: torch_s[load] / openvino_s[load] for load in LOADS},
    }
