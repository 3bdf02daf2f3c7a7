"""Stage `crop`: cut each mammogram down to its breast.

Reads  <pfs>/sample_data/<exam>/exam.json (or, as Pachyderm's breast-cancer-detection
       example ships it, gen_exam_list_before_cropping.pkl) and the PNGs beside it.
Writes <pfs>/out/<exam>/cropped_images/<image>.png and cropped_exam_list.json.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from stages.batching import DatumRun, stage_main
from stages.core.cropping import crop_image, crop_info
from stages.core.errors import DataError
from stages.core.exam import VIEWS
from stages.core.orientation import crop_mode
from stages.core.patches import PATCH_SIZE
from stages.harness import run_exams, stage_parser, warn
from stages.io.exam_files import CROPPED_EXAM_JSON, CROPPED_IMAGES, load_input_exam, read_image
from stages.io.images import write_png
from stages.io.pfs import exam_dirs, write_json
from stages.table import CROP, SAMPLE_DATA


def crop_exam(input_root: Path, exam_id: str, staging: Path) -> None:
    """Crop every image of one exam into `staging`."""
    exam = load_input_exam(input_root / exam_id)
    metadata: dict[str, dict[str, list[Any]]] = {}
    for view in VIEWS:
        for name in exam.images[view]:
            file = f"{name}.png"
            image = read_image(input_root / exam_id / file, exam_id, file)
            if image.dtype == np.uint8:
                warn(
                    CROP,
                    exam_id,
                    file,
                    "8-bit image: processed, but the models were "
                    "trained on 12-bit data stored as 16-bit; prefer the original depth",
                )
            try:
                info = crop_info(image, crop_mode(view, exam.horizontal_flip))
            except DataError as error:
                raise DataError(error.reason, exam=exam_id, file=file) from error
            cropped = crop_image(image, info)
            if min(cropped.shape) < PATCH_SIZE:
                raise DataError(
                    f"cropped image is {cropped.shape[0]}x{cropped.shape[1]} px, under the "
                    f"{PATCH_SIZE} px heatmap patch on one axis: not a usable mammogram; check the "
                    "image (a thumbnail or a spot view?)",
                    exam=exam_id,
                    file=file,
                )
            write_png(staging / CROPPED_IMAGES / file, cropped)
            for key, value in info.as_json().items():
                metadata.setdefault(key, {v: [] for v in VIEWS})[view].append(value)
    for key, per_view in metadata.items():
        exam = exam.with_metadata(key, per_view)
    write_json(staging / CROPPED_EXAM_JSON, exam.to_dict())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(CROP, "Crop each mammogram to the breast (NYU reference rules).")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace) -> DatumRun:
    def run(pfs_root: Path) -> int:
        input_root = pfs_root / SAMPLE_DATA
        exam_ids = [path.name for path in exam_dirs(input_root)]
        process = partial(crop_exam, input_root)
        return run_exams(CROP, pfs_root, exam_ids, process, strict=args.strict)

    return run


def main(argv: list[str] | None = None) -> int:
    return stage_main(CROP, parse_args, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
