"""visualize stage: heatmap overlay figures and one self-contained HTML report per exam.

Inputs crop, generate_heatmaps and classify, joined per exam. Writes
out/<exam>/<image>_overlay.png (full resolution, radiological orientation) and
out/<exam>/report.html (overlays embedded, downscaled). Radiological orientation and
layout: right breasts face left and hang on the viewer's left, left breasts face right
and hang on the right, so the chest walls meet in the middle; CC above MLO.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stages.batching import DatumRun, stage_main
from stages.harness import run_exams, stage_parser
from stages.io.exam_files import CROPPED_EXAM_JSON, REPORT_HTML, load_exam, read_cropped_image
from stages.io.heatmaps_h5 import KINDS
from stages.io.images import encode_png
from stages.io.pfs import atomic_write_bytes, exam_dirs
from stages.report.figure import view_figure
from stages.report.html import ViewImage, exam_report_html
from stages.report.inputs import read_probability_heatmap
from stages.report.png import OVERLAY_PNG_COMPRESSION, fit_height
from stages.report.predictions import read_predictions
from stages.table import CLASSIFY, CROP, GENERATE_HEATMAPS, VISUALIZE, stage

# Embedded copies this tall keep a four-view report to a few MB.
EMBEDDED_HEIGHT = 900


def write_exam_report(pfs_root: Path, exam_id: str, out_dir: Path) -> None:
    """Read one exam's crops, heatmaps and predictions; write its overlays and report."""
    crop_dir, heatmaps_dir = pfs_root / CROP / exam_id, pfs_root / GENERATE_HEATMAPS / exam_id
    exam = load_exam(crop_dir, CROPPED_EXAM_JSON)
    predictions = read_predictions(pfs_root / CLASSIFY / exam_id, exam_id)
    images = []
    for view, name in exam.image_names():
        image = read_cropped_image(crop_dir, exam_id, name)
        heatmaps = {
            kind: read_probability_heatmap(heatmaps_dir, exam_id, kind, name, image.shape)
            for kind in KINDS
        }
        figure = view_figure(
            image,
            heatmaps["malignant"],
            heatmaps["benign"],
            view=view,
            image_name=name,
            horizontal_flip=exam.horizontal_flip,
        )
        overlay_file = f"{name}_overlay.png"
        atomic_write_bytes(out_dir / overlay_file, encode_png(figure, OVERLAY_PNG_COMPRESSION))
        embedded = encode_png(fit_height(figure, EMBEDDED_HEIGHT), OVERLAY_PNG_COMPRESSION)
        images.append(ViewImage(view, name, embedded, overlay_file))
    atomic_write_bytes(out_dir / REPORT_HTML, exam_report_html(predictions, images).encode())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(VISUALIZE, "Heatmap overlays and an HTML report per exam.")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace) -> DatumRun:
    inputs = stage(VISUALIZE).inputs

    def run(pfs_root: Path) -> int:
        # Joined per exam in a pipeline; run by hand, every exam any input holds.
        exam_ids = sorted({exam.name for name in inputs for exam in exam_dirs(pfs_root / name)})
        return run_exams(
            VISUALIZE,
            pfs_root,
            exam_ids,
            lambda exam_id, out_dir: write_exam_report(pfs_root, exam_id, out_dir),
            upstream_inputs=inputs,
            strict=args.strict,
        )

    return run


def main(argv: list[str] | None = None) -> int:
    return stage_main(VISUALIZE, parse_args, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
