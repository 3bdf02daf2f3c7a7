"""Shared fixtures, and one OpenVINO conversion cache for the whole run."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from stages.nets.runtime import OPENVINO_CACHE_ENV

_CACHE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Every stage process the tests start converts into (and reads from) a fresh folder of
    this run, never the user's ~/.cache: set before collection, as some test modules copy
    os.environ when they are imported."""
    folder = tempfile.mkdtemp(prefix="bcd-test-openvino-cache-")
    config.stash[_CACHE] = folder
    os.environ[OPENVINO_CACHE_ENV] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_CACHE, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pfs(tmp_path: Path) -> Path:
    """An empty /pfs-shaped root."""
    root = tmp_path / "pfs"
    root.mkdir()
    return root
