"""The exams a bench run measures, laid out as the `sample_data` input repo.

Full runs use full-size synthetic exams (`make sample-data`); scaling runs need more exams
than that folder holds, so they get renamed copies (hard links where possible), which
cost the pipeline exactly what the originals cost. `--quick` uses one exam shrunk (6x in
height, 4x in width): few heatmap patches, every stage still exercised.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from stages.core.exam import VIEWS
from stages.io.exam_files import EXAM_JSON
from stages.io.images import read_greyscale_png, write_png
from stages.io.pfs import exam_dirs

QUICK_SHRINK = (6, 4)  # (rows, columns): still over 256 px of breast after cropping


def source_exams(data: Path) -> list[Path]:
    """The exam folders (holding exam.json) under `data`, sorted; ValueError when none."""
    exams = [path for path in exam_dirs(data) if (path / EXAM_JSON).is_file()]
    if not exams:
        raise ValueError(
            f"{data}: no exam folders with {EXAM_JSON}; make full-size synthetic ones with "
            "`make sample-data` (or pass --data DIR)"
        )
    return exams


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def copy_exam(source: Path, target: Path) -> Path:
    """`source`'s files under the folder `target` (a new exam id, same images)."""
    target.mkdir(parents=True)
    for file in source.iterdir():
        if file.is_file():
            _link_or_copy(file, target / file.name)
    return target


def exam_set(sources: list[Path], count: int, out: Path) -> Path:
    """A sample_data folder of `count` exams cycling through `sources`; returns `out`.

    The first len(sources) keep their ids; later ones are `<id>-copy<k>`.
    """
    out.mkdir(parents=True)
    for index in range(count):
        source = sources[index % len(sources)]
        round_ = index // len(sources)
        name = source.name if round_ == 0 else f"{source.name}-copy{round_}"
        copy_exam(source, out / name)
    return out


def shrink_exam(source: Path, target: Path, factors: tuple[int, int] = QUICK_SHRINK) -> Path:
    """`source` with every image shrunk by (row, column) `factors` (nearest neighbour).

    Nearest neighbour keeps background pixels exactly zero, which cropping relies on.
    """
    target.mkdir(parents=True)
    exam = json.loads((source / EXAM_JSON).read_text())
    (target / EXAM_JSON).write_text(json.dumps(exam, indent=2) + "\n")
    for png in source.glob("*.png"):
        image = read_greyscale_png(png)
        height, width = image.shape
        small = cv2.resize(
            image, (width // factors[1], height // factors[0]), interpolation=cv2.INTER_NEAREST
        )
        write_png(target / png.name, np.ascontiguousarray(small))
    return target


def image_count(exam_dir: Path) -> int:
    """How many images an exam lists over its four views."""
    exam = json.loads((exam_dir / EXAM_JSON).read_text())
    return sum(len(exam.get(view, [])) for view in VIEWS)
