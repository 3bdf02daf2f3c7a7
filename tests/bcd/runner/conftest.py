"""Fixtures of the runner tests."""

from pathlib import Path

import pytest
from runner_sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """An empty sandbox: repos, specs and output folder under tmp_path."""
    return Sandbox(tmp_path)
