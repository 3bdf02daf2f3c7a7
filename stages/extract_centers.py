"""Stage `extract_centers`: the best model-window centre of each cropped image.

Reads  <pfs>/crop/<exam>/cropped_exam_list.json and cropped_images/.
Writes <pfs>/out/<exam>/data.json: the exam dict plus `best_center`.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from stages.batching import DatumRun, stage_main
from stages.core.centers import cc_center, mlo_center
from stages.core.exam import INPUT_SIZE, VIEWS, view_angle
from stages.core.orientation import to_facing_right
from stages.harness import run_exams, stage_parser
from stages.io.exam_files import (
    CENTERS_JSON,
    CROPPED_EXAM_JSON,
    CROPPED_IMAGES,
    load_exam,
    read_image,
)
from stages.io.pfs import exam_dirs, write_json
from stages.table import CROP, EXTRACT_CENTERS


def centers_for_exam(input_root: Path, exam_id: str, staging: Path) -> None:
    """Compute `best_center` for every image of one cropped exam into `staging`."""
    exam = load_exam(input_root / exam_id, CROPPED_EXAM_JSON)
    best_center: dict[str, list[list[int]]] = {}
    for view in VIEWS:
        best_center[view] = []
        for index, name in enumerate(exam.images[view]):
            file = f"{CROPPED_IMAGES}/{name}.png"
            image = to_facing_right(
                read_image(input_root / exam_id / file, exam_id, file), view, exam.horizontal_flip
            )
            window = INPUT_SIZE[view_angle(view)]
            rightmost_x = exam.metadata["rightmost_points"][view][index][1]
            if view_angle(view) == "CC":
                center = cc_center(image, window, rightmost_x)
            else:
                bottommost_y = exam.metadata["bottommost_points"][view][index][0]
                center = mlo_center(image, window, rightmost_x, bottommost_y)
            best_center[view].append(list(center))
    write_json(staging / CENTERS_JSON, exam.with_metadata("best_center", best_center).to_dict())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(EXTRACT_CENTERS, "Find each cropped image's best window centre.")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace) -> DatumRun:
    def run(pfs_root: Path) -> int:
        input_root = pfs_root / CROP
        return run_exams(
            EXTRACT_CENTERS,
            pfs_root,
            [path.name for path in exam_dirs(input_root)],
            partial(centers_for_exam, input_root),
            upstream_inputs=[CROP],
            strict=args.strict,
        )

    return run


def main(argv: list[str] | None = None) -> int:
    return stage_main(EXTRACT_CENTERS, parse_args, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
