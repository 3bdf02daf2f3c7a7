"""Shared fixtures."""

from pathlib import Path

import pytest


@pytest.fixture
def pfs(tmp_path: Path) -> Path:
    """An empty /pfs-shaped root."""
    root = tmp_path / "pfs"
    root.mkdir()
    return root
