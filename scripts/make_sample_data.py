"""Deterministic phantom mammography exams for demos, tests and benchmarks.

Each exam is `<out>/<exam_id>/exam.json` (the NYU exam dict) plus one 16-bit greyscale PNG
per view. The phantoms only need to look like mammograms to the pipeline: a breast-shaped
region against the chest wall with smooth tissue texture and a few dense blobs, a pectoral
muscle wedge on MLO views, and background clutter (burned-in label text and a skin-marker
disc) that cropping must discard.

Pixel values come from basic float arithmetic (no trigonometric or exponential functions,
no OpenCV resampling) so that the same seed gives the same pixels on any machine; tests
regenerate inputs with these functions and compare against recorded reference results.

Usage: python scripts/make_sample_data.py [--out DIR] [--exams N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from stages.core.exam import VIEWS, view_angle, view_side

FULL_HEIGHT = 3328
FULL_WIDTH = 2560
MAX_VALUE = 4095  # 12-bit detector range, stored in uint16
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sample_data"

Seed = int | Sequence[int]


def _rng(seed: Seed, view: str) -> np.random.Generator:
    """One generator per (seed, view), so the views of an exam differ but stay reproducible."""
    return np.random.default_rng([*np.atleast_1d(seed).tolist(), VIEWS.index(view)])


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, cell: float
) -> npt.NDArray[np.float64]:
    """Value noise in [0, 1]: a coarse uniform grid upsampled with smoothstep weights."""
    grid = rng.random((int(height / cell) + 2, int(width / cell) + 2))

    def axis_weights(length: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        position = np.arange(length) / cell
        index = position.astype(np.int64)
        frac = position - index
        return index, frac * frac * (3.0 - 2.0 * frac)

    y_index, y_weight = axis_weights(height)
    x_index, x_weight = axis_weights(width)
    rows = grid[y_index] * (1.0 - y_weight)[:, None] + grid[y_index + 1] * y_weight[:, None]
    return rows[:, x_index] * (1.0 - x_weight) + rows[:, x_index + 1] * x_weight


def _wobble(rng: np.random.Generator, length: int, knots: int, amount: float) -> np.ndarray:
    """1 +- amount, varying smoothly along an axis (keeps outlines from looking drawn)."""
    # The noise's only row (numpy types an int index as returning Any).
    noise: npt.NDArray[np.float64] = _smooth_noise(rng, 1, length, length / knots)[0]
    return 1.0 + amount * (2.0 * noise - 1.0)


def _cc_extent(
    rng: np.random.Generator, height: int, width: int, depth: float, reach: float
) -> np.ndarray:
    """Per-row breast depth from the chest wall for a CC view: a lopsided half ellipse."""
    centre = height * rng.uniform(0.46, 0.54)
    semi_up = height * reach * rng.uniform(0.9, 1.0)
    semi_down = height * reach * rng.uniform(0.9, 1.0)
    rows = np.arange(height, dtype=np.float64)
    semi = np.where(rows < centre, semi_up, semi_down)
    t = (rows - centre) / semi
    return width * depth * np.sqrt(np.clip(1.0 - t * t, 0.0, None))


def _mlo_extent(
    rng: np.random.Generator, height: int, width: int, depth: float, reach: float
) -> tuple[np.ndarray, float]:
    """Per-row breast depth for an MLO view: axillary tail at the top edge, round below."""
    nipple = height * rng.uniform(0.45, 0.55)
    semi_down = min(height * reach * rng.uniform(0.85, 1.0), 0.97 * height - nipple)
    top = width * depth * rng.uniform(0.35, 0.5)
    full = width * depth
    rows = np.arange(height, dtype=np.float64)
    above = (nipple - rows) / nipple
    below = (rows - nipple) / semi_down
    upper = top + (full - top) * np.sqrt(np.clip(1.0 - above * above, 0.0, None))
    lower = full * np.sqrt(np.clip(1.0 - below * below, 0.0, None))
    return np.where(rows < nipple, upper, lower), top


def _add_blobs(
    tissue: np.ndarray, inside: np.ndarray, extent: np.ndarray, rng: np.random.Generator
) -> None:
    """Add a few dense, softly edged ellipses (fibroglandular tissue) inside the breast."""
    height, width = tissue.shape
    scale = min(height, width) / FULL_WIDTH
    rows_with_tissue = np.flatnonzero(extent > 0.3 * extent.max())
    for _ in range(int(rng.integers(3, 7))):
        cy = int(rng.choice(rows_with_tissue))
        cx = int(extent[cy] * rng.uniform(0.2, 0.7))
        ry, rx = rng.uniform(40, 160, 2) * scale + 4
        amplitude = rng.uniform(500, 1200)
        y0, y1 = max(cy - int(ry), 0), min(cy + int(ry) + 1, height)
        x0, x1 = max(cx - int(rx), 0), min(cx + int(rx) + 1, width)
        dy = (np.arange(y0, y1)[:, None] - cy) / ry
        dx = (np.arange(x0, x1)[None, :] - cx) / rx
        falloff = np.clip(1.0 - (dy * dy + dx * dx), 0.0, None)
        tissue[y0:y1, x0:x1] += amplitude * falloff * falloff * inside[y0:y1, x0:x1]


def _draw_markers(image: np.ndarray, view: str, chest_wall_left: bool) -> None:
    """Burn in a view label and a skin-marker disc on the side away from the chest wall."""
    height, width = image.shape
    scale = width / FULL_WIDTH
    margin = int(0.04 * width)
    # A disc that survives the crop's erosion at full size: a second component to reject.
    radius = int(0.045 * width)
    cy, cx = int(0.8 * height), (int(0.86 * width) if chest_wall_left else int(0.14 * width))
    rows, cols = np.ogrid[:height, :width]
    image[(rows - cy) ** 2 + (cols - cx) ** 2 <= radius * radius] = MAX_VALUE

    label = f"{view_side(view)} {view_angle(view)}"
    font, font_scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 4.0 * scale, max(1, round(8 * scale))
    (text_width, _), _ = cv2.getTextSize(label, font, font_scale, thickness)
    x = width - margin - text_width if chest_wall_left else margin
    # OpenCV draws text on 8-bit images only: draw a stencil, then burn it in.
    stencil = np.zeros(image.shape, np.uint8)
    cv2.putText(stencil, label, (x, int(0.06 * height)), font, font_scale, 255, thickness)
    image[stencil > 0] = MAX_VALUE


def make_phantom(
    view: str,
    seed: Seed,
    height: int = FULL_HEIGHT,
    width: int = FULL_WIDTH,
    mirrored: bool = False,
    *,
    depth: float | None = None,
    reach: float | None = None,
    markers: bool = True,
) -> np.ndarray:
    """One phantom mammogram (uint16, background exactly 0) in the NYU raw orientation.

    Left breasts face right (chest wall on the left edge), right breasts face left;
    `mirrored` flips the image as in an exam with horizontal_flip "YES".
    `depth` (breast depth / image width) and `reach` (vertical semi-axis / image height)
    override the seeded shape, e.g. depth > 1 makes the breast run off the far edge.
    """
    rng = _rng(seed, view)
    depth = rng.uniform(0.42, 0.58) if depth is None else depth
    reach = rng.uniform(0.36, 0.48) if reach is None else reach
    if view_angle(view) == "CC":
        extent, muscle_width = _cc_extent(rng, height, width, depth, reach), 0.0
    else:
        extent, tail = _mlo_extent(rng, height, width, depth, reach)
        muscle_width = tail * rng.uniform(0.7, 0.95)
    extent = extent * _wobble(rng, height, knots=12, amount=0.04)

    cols = np.arange(width, dtype=np.float64)[None, :]
    inside = cols < extent[:, None]
    # Tissue thins towards the skin line, so the image darkens there.
    radial = np.clip(cols / np.maximum(extent[:, None], 1.0), 0.0, 1.0)
    thickness = np.sqrt(1.0 - radial * radial)
    texture = sum(
        weight * _smooth_noise(rng, height, width, height / cells)
        for weight, cells in ((0.6, 10), (0.3, 30), (0.1, 80))
    )
    tissue = 300.0 + 1700.0 * thickness * (0.55 + 0.9 * texture)
    if muscle_width > 0:
        muscle_height = height * rng.uniform(0.35, 0.5)
        rows = np.arange(height, dtype=np.float64)[:, None]
        tissue += 900.0 * (cols < muscle_width * (1.0 - rows / muscle_height))
    _add_blobs(tissue, inside, extent, rng)

    image = np.where(inside, np.clip(np.floor(tissue + 0.5), 1, MAX_VALUE), 0).astype(np.uint16)
    chest_wall_left = (view_side(view) == "L") != mirrored
    if not chest_wall_left:
        image = np.ascontiguousarray(np.fliplr(image))
    if markers:
        _draw_markers(image, view, chest_wall_left)
    return image


def make_twin_phantom(
    view: str,
    seed: Seed,
    height: int,
    width: int,
    mirrored: bool = False,
    *,
    gap: int = 0,
    **shape: Any,
) -> np.ndarray:
    """Two identical phantoms stacked with `gap` zero rows between them.

    Without markers and with a breast clear of the top and bottom edges, the two breasts
    are connected components of exactly equal size: a tie for the crop to break.
    """
    half = make_phantom(view, seed, height, width, mirrored, markers=False, **shape)
    return np.vstack([half, np.zeros((gap, width), np.uint16), half])


def image_name(exam_id: str, view: str) -> str:
    """The exam's image name for a view, e.g. 'demo-0001_L_CC'."""
    return f"{exam_id}_{view.replace('-', '_')}"


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a 16-bit greyscale PNG at maximum compression (phantoms are mostly zeros)."""
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")


def write_exam(
    out_dir: Path,
    exam_id: str,
    seed: Seed,
    horizontal_flip: str = "NO",
    height: int = FULL_HEIGHT,
    width: int = FULL_WIDTH,
    **shape: Any,
) -> Path:
    """Write one exam folder (exam.json + a PNG per view); returns the folder."""
    exam_dir = Path(out_dir) / exam_id
    exam_dir.mkdir(parents=True, exist_ok=True)
    exam: dict[str, Any] = {"horizontal_flip": horizontal_flip}
    for view in VIEWS:
        name = image_name(exam_id, view)
        image = make_phantom(view, seed, height, width, horizontal_flip == "YES", **shape)
        write_png(exam_dir / f"{name}.png", image)
        exam[view] = [name]
    (exam_dir / "exam.json").write_text(json.dumps(exam, indent=2) + "\n")
    return exam_dir


def exam_plan(count: int, seed: int) -> list[tuple[str, list[int], str]]:
    """(exam id, exam seed, horizontal_flip) for exams demo-0001..; every 4th one mirrored."""
    return [
        (f"demo-{number:04d}", [seed, number], "YES" if number % 4 == 2 else "NO")
        for number in range(1, count + 1)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--exams", "--count", dest="exams", type=int, default=4, help="number of exams"
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed")
    args = parser.parse_args(argv)
    for exam_id, exam_seed, flip in exam_plan(args.exams, args.seed):
        write_exam(args.out, exam_id, exam_seed, flip)
        print(f"wrote {args.out / exam_id} (horizontal_flip {flip})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
