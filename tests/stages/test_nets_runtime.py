"""Torch thread count from the environment, device choice."""

from __future__ import annotations

import pytest
import torch

from stages.nets.runtime import THREADS_ENV, configure_torch_threads, resolve_device


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_follow_the_environment(monkeypatch, restore_threads):
    monkeypatch.setenv(THREADS_ENV, "1")
    assert configure_torch_threads() == 1
    assert torch.get_num_threads() == 1


def test_threads_untouched_without_the_variable(monkeypatch, restore_threads):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    assert configure_torch_threads() == before


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_thread_counts_are_refused(monkeypatch, restore_threads, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(ValueError, match=THREADS_ENV):
        configure_torch_threads()


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="one of auto, cpu, cuda"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
