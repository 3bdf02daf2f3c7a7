"""How many datums of a pipeline run at once here, on which GPUs, with how many threads.

`--workers N` runs up to N datums in parallel; a pipeline whose spec asks for GPUs runs one
datum at a time per GPU it needs, and like any other pipeline when this machine has no GPU
for it (its datums then run on the CPU). The cores are divided among the datums that
actually run together, which is fewer than the slots when a job has fewer datums (or,
batched, fewer datum sets) than that: OMP_NUM_THREADS, MKL_NUM_THREADS and
BCD_TORCH_THREADS = max(1, cores // parallel datums), so one datum on 2 cores gets 2
threads. These win over the same names in `transform.env`, which describe the cluster's
pods, not this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "BCD_TORCH_THREADS")


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_workers() -> int:
    """2, or 1 on a one-core machine.

    Measured on 2 cores (docs/performance.md, Workers): 4 full-size exams took 852 s with
    two single-threaded datums at a time against 1,020 s with one two-threaded datum,
    because torch's threads wait on each other at every small DenseNet layer while two
    processes never do, and crop, I/O and start-up overlap with the other datum's work.
    """
    return min(2, available_cores())


def visible_gpus(environ: Mapping[str, str]) -> list[str]:
    """GPU ids to hand out: CUDA_VISIBLE_DEVICES when set, else what `nvidia-smi -L` lists."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = [part.strip() for part in environ["CUDA_VISIBLE_DEVICES"].split(",")]
        return [gpu for gpu in ids if gpu and gpu != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(index) for index, line in enumerate(listing.splitlines()) if line.startswith("GPU")]


@dataclass(frozen=True)
class Slots:
    """Parallel datums for one pipeline and the GPU ids each one gets."""

    gpu_sets: tuple[tuple[str, ...], ...]
    threads: int

    @property
    def parallel(self) -> int:
        return len(self.gpu_sets)


def plan_slots(workers: int, gpus_per_datum: int, gpus: list[str], cores: int, tasks: int) -> Slots:
    """Slots for `tasks` things to run: up to `workers` CPU slots, or one per GPU set.

    A task is a datum, or a datum set under datum batching: no more slots than tasks, so
    that the cores go to the datums that run.
    """
    count = max(1, min(workers, tasks))
    if gpus_per_datum <= 0 or len(gpus) < gpus_per_datum:
        # No GPU for it here: its datums run on the CPU, as many at once as for any other.
        sets: list[tuple[str, ...]] = [()] * count
    else:
        sets = [
            tuple(gpus[index * gpus_per_datum : (index + 1) * gpus_per_datum])
            for index in range(min(count, len(gpus) // gpus_per_datum))
        ]
    return Slots(tuple(sets), max(1, cores // len(sets)))


def slot_env(slots: Slots, gpu_set: tuple[str, ...]) -> dict[str, str]:
    """Thread counts, and the GPUs of this slot when it has any."""
    env = {name: str(slots.threads) for name in THREAD_VARIABLES}
    if gpu_set:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_set)
    return env
