"""Where and how the networks run: thread count, device, numeric precision, backend."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stages import __version__
from stages.table import CLASSIFY, GENERATE_HEATMAPS

THREADS_ENV = "BCD_TORCH_THREADS"
PRECISION_ENV = "BCD_PRECISION"
DEVICE_CHOICES = ("auto", "cpu", "cuda")
# fp32 is exact (the reference's numbers); bf16 is the opt-in fast mode.
PRECISION_CHOICES = ("fp32", "bf16")
BACKEND_ENV = "BCD_BACKEND"
TORCH_BACKEND = "torch"
OPENVINO_BACKEND = "openvino"
BACKEND_CHOICES = ("auto", TORCH_BACKEND, OPENVINO_BACKEND)
# What auto runs on the CPU, per stage (on CUDA: torch). generate_heatmaps: OpenVINO, ~2x
# torch's patches/s quiet, ~3x beside a busy process. classify: torch, because its four
# compiled trunks hold their own working memory, ~0.9 GiB more than torch and above the
# reference's peak, for a few seconds less per exam (figures: docs/performance.md).
AUTO_CPU_BACKEND = {GENERATE_HEATMAPS: OPENVINO_BACKEND, CLASSIFY: TORCH_BACKEND}
# Where converted OpenVINO networks are kept (stages.nets.openvino_cache); "off": nowhere.
OPENVINO_CACHE_ENV = "BCD_OPENVINO_CACHE"


def openvino_cache_folder(environ: Mapping[str, str]) -> Path | None:
    """Where converted networks are kept: $BCD_OPENVINO_CACHE ('off' or empty: nowhere),
    else $XDG_CACHE_HOME/bcd/openvino, else ~/.cache/bcd/openvino."""
    chosen = environ.get(OPENVINO_CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip() in ("", "off") else Path(chosen)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bcd" / "openvino"


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """--device and --precision, as every torch stage takes them (defaults from the env)."""
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default=os.environ.get("BCD_DEVICE", "auto"),
        help="torch device (default: $BCD_DEVICE, else auto = CUDA when available)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=os.environ.get(PRECISION_ENV, "fp32"),
        help="fp32 = exact (the default); bf16 = fast mode, results differ ~1e-3, where "
        "supported (else exact fp32, with a note) (default: $BCD_PRECISION, else fp32)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default=os.environ.get(BACKEND_ENV, "auto"),
        help="what runs the networks: torch, or openvino (CPU only); auto = torch on CUDA, "
        "on the CPU openvino for generate_heatmaps and torch for classify (default: "
        "$BCD_BACKEND, else auto)",
    )


def configure_torch_threads() -> int:
    """Apply $BCD_TORCH_THREADS (a positive integer) to torch, if set; return the count in use.

    Containers often see every host core while being given a few: an explicit count
    avoids oversubscription.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, not {value!r}")
        torch.set_num_threads(int(value))
    return torch.get_num_threads()


def resolve_device(choice: str) -> torch.device:
    """The device for 'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."""
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, not {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def use_exact_fp32() -> None:
    """Keep fp32 matrix products in full fp32 on CUDA.

    TF32 (on by default for cuDNN convolutions) rounds inputs to 10 mantissa bits, which
    moves results by ~1e-3: too far from the CPU and the reference.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 arithmetic natively (CPU: AVX512-BF16 or AMX)."""
    # torch leaves these unannotated (their results are Any to mypy); each gives a bool.
    supported: bool
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return supported
    supported = (
        torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    return supported


def resolve_backend(choice: str, device: torch.device, stage: str) -> str:
    """The backend `stage` runs for 'auto' (a fixed rule: AUTO_CPU_BACKEND on the CPU, torch
    on CUDA), or the one asked for.

    Never chosen by a benchmark at start-up, so that the same machine always gives the same
    numbers. ValueError when the backend cannot run on `device` or is not installed.
    """
    if choice not in BACKEND_CHOICES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, not {choice!r}")
    if choice == "auto":
        choice = AUTO_CPU_BACKEND[stage] if device.type == "cpu" else TORCH_BACKEND
    if choice == OPENVINO_BACKEND:
        if device.type != "cpu":
            raise ValueError(
                f"backend 'openvino' runs on the CPU only, not on {device.type.upper()}: "
                "use --backend torch (or auto), or --device cpu"
            )
        try:
            importlib.metadata.version("openvino")
        except importlib.metadata.PackageNotFoundError:
            raise ValueError(
                "backend 'openvino' needs the openvino package (the torch extra: pip install "
                "'.[torch]'); or use --backend torch"
            ) from None
    return choice


def backend_version(backend: str) -> str:
    """The installed version of the package that runs `backend`."""
    return importlib.metadata.version("openvino" if backend == OPENVINO_BACKEND else "torch")


@dataclass(frozen=True)
class Precision:
    """The precision asked for, the one really used, and why they differ (if they do)."""

    requested: str
    used: str
    note: str | None = None

    def provenance(self) -> dict[str, str]:
        """Provenance fields: "precision" (what ran), plus "precision_note" after a fallback."""
        fields = {"precision": self.used}
        if self.note:
            fields["precision_note"] = self.note
        return fields


EXACT = Precision("fp32", "fp32")


def resolve_precision(choice: str, device: torch.device) -> Precision:
    """The precision to run at; bf16 falls back to exact fp32 where it is not supported."""
    if choice not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, not {choice!r}")
    if choice == "bf16" and not bf16_supported(device):
        note = (
            f"bf16 was asked for but this {device.type.upper()} has no native bf16 support: "
            "ran exact fp32 instead"
        )
        return Precision(choice, "fp32", note)
    return EXACT if choice == "fp32" else Precision(choice, choice)


@contextlib.contextmanager
def autocast(precision: Precision, device: torch.device) -> Iterator[None]:
    """Run the enclosed forward passes at `precision` (bf16 via autocast; fp32 as is)."""
    if precision.used == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


@dataclass(frozen=True)
class TorchSetup:
    """Where a torch stage runs: device, precision, threads and the backend of its networks."""

    device: torch.device
    precision: Precision
    threads: int
    backend: str
    stage: str
    # Where converted OpenVINO networks are kept (None: converted in every process).
    conversion_cache: Path | None

    def provenance(self) -> dict[str, Any]:
        """The provenance fields every torch stage records."""
        return {
            "device": str(self.device),
            "torch_threads": self.threads,
            **self.precision.provenance(),
            "backend": self.backend,
            "backend_version": backend_version(self.backend),
            "project_version": __version__,
        }


def setup_torch_stage(
    stage: str, device_choice: str, precision_choice: str, backend_choice: str = "auto"
) -> TorchSetup:
    """Device, precision, threads ($BCD_TORCH_THREADS), backend and exact fp32 for a stage.

    ValueError when the choice cannot run here (the stage exits 2 before any exam); a
    precision fallback is said on stderr.
    """
    device = resolve_device(device_choice)
    precision = resolve_precision(precision_choice, device)
    backend = resolve_backend(backend_choice, device, stage)
    threads = configure_torch_threads()
    use_exact_fp32()
    if precision.note:
        print(f"bcd {stage}: {precision.note}", file=sys.stderr)
    return TorchSetup(device, precision, threads, backend, stage, openvino_cache_folder(os.environ))


def on_backend(model: nn.Module, input_shape: tuple[int, ...], setup: TorchSetup) -> nn.Module:
    """`model` as the setup's backend runs it: itself for torch; converted and compiled once
    for `input_shape` for OpenVINO (seconds; once per process, or per warm worker).
    """
    if setup.backend != OPENVINO_BACKEND:
        return model
    # Imported here: only a stage that runs OpenVINO loads it.
    from stages.nets.openvino_backend import on_openvino

    return on_openvino(
        model,
        input_shape,
        setup.precision,
        setup.threads,
        setup.conversion_cache,
        f"bcd {setup.stage}",
    )
