"""What the bench runs on, and the ceiling it measures the network against."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

# Square matrices large enough to reach a CPU's GEMM peak, small enough to time in seconds.
PEAK_SIZE = 2048
PEAK_SECONDS = 2.0
CPU_FLAGS_SHOWN = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return torch.get_num_threads()


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """(model name, the SIMD flags that matter here) of this machine's CPU."""
    name, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return name, [flag for flag in CPU_FLAGS_SHOWN if flag in flags]


def machine_facts(threads: int) -> dict[str, Any]:
    """CPU, cores, torch build and thread count, and the GPU when there is one."""
    name, flags = cpu_description()
    facts: dict[str, Any] = {
        "cpu": name,
        "cpu_flags": flags,
        "cores": available_cores(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def matmul_gflops(
    dtype: torch.dtype,
    device: torch.device,
    size: int = PEAK_SIZE,
    seconds: float = PEAK_SECONDS,
) -> float:
    """Sustained GFLOP/s of square matrix products in `dtype`: the practical peak."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, kernel choice
    runs, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        runs += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * size**3 * runs / elapsed / 1e9
