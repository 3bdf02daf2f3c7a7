"""Render the exam report and the summary index in headless Chromium and look at the pixels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO, skip_unless_required, write_report_inputs

from stages import summary, visualize

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(autouse=True)
def chromium() -> None:
    if not CHROMIUM.is_file():
        skip_unless_required("needs Debian's chromium: apt-get install chromium")


def screenshot(page: Path, png: Path) -> np.ndarray:
    """Run scripts/screenshot_report.py as a reader would, return the picture as RGB."""
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "screenshot_report.py"), str(page), str(png)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    picture = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert picture is not None
    return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


def banner_red(picture: np.ndarray) -> np.ndarray:
    """Pixels of the banner's red (#cc0000), not of a heatmap tint over grey."""
    r, g, b = (picture[..., i].astype(int) for i in range(3))
    return (r > 180) & (g < 40) & (b < 40)


def assert_not_blank(picture: np.ndarray) -> None:
    assert picture.shape[:2] == (1800, 1400)
    assert picture.std() > 20 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 1000


def test_unverified_report_and_index_show_the_red_banner(tmp_path):
    write_report_inputs(tmp_path, "0", scale=0.25)
    assert visualize.main(["--pfs", str(tmp_path)]) == 0
    report = screenshot(tmp_path / "out" / "0" / "report.html", tmp_path / "report.png")
    assert_not_blank(report)
    red = banner_red(report)
    assert red.sum() > 1400 * 30  # a full-width banner, tens of pixels tall
    assert red[:100].sum() > 0.9 * red.sum()  # at the top of the page

    # The summary over that run: classify beside visualize's output, as in a pipeline.
    run = tmp_path / "run"
    run.mkdir()
    (run / "classify").symlink_to(tmp_path / "classify")
    (run / "visualize").symlink_to(tmp_path / "out")
    assert summary.main(["--pfs", str(run)]) == 0
    index = screenshot(run / "out" / "index.html", tmp_path / "index.png")
    assert banner_red(index)[:100].sum() > 1400 * 30
    light_text = index[150:].min(axis=2) > 180  # the tables' white text below the banner
    assert light_text.sum() > 2000
