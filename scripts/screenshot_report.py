"""Render an HTML page to a PNG with headless Chromium, to look at a report as a reader would.

usage: python scripts/screenshot_report.py PAGE.html OUT.png [--width 1400] [--height 1800]

Needs Debian's chromium (`apt-get install -y chromium`), or --chromium PATH.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Flags for a quiet, offline, one-shot render in a container (no sandbox, no GPU).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def screenshot(
    page: Path,
    png: Path,
    *,
    width: int = 1400,
    height: int = 1800,
    chromium: str = DEFAULT_CHROMIUM,
    timeout_s: float = 120,
) -> None:
    """Write a `width` x `height` screenshot of `page` to `png`; raise if Chromium fails."""
    png = png.resolve()
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="bcd-chromium-") as profile:
        completed = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={width},{height}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if completed.returncode != 0 or not png.is_file():
        raise RuntimeError(
            f"chromium exited {completed.returncode} without a screenshot:\n"
            + completed.stderr[-2000:]
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the HTML file")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800)
    parser.add_argument("--chromium", default=DEFAULT_CHROMIUM, help="the browser binary")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        parser.error(f"no such page: {args.page}")
    screenshot(args.page, args.png, width=args.width, height=args.height, chromium=args.chromium)
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
