"""Where and how torch runs: thread count from the environment, device choice."""

from __future__ import annotations

import os

import torch

THREADS_ENV = "BCD_TORCH_THREADS"
DEVICE_CHOICES = ("auto", "cpu", "cuda")


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
