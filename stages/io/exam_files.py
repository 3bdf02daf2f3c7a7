"""Reading an exam's JSON and images from a stage input, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stages.core.errors import DataError
from stages.core.exam import Exam, exam_from_dict
from stages.io.images import read_greyscale_png
from stages.io.pfs import read_json

EXAM_JSON = "exam.json"
CROPPED_EXAM_JSON = "cropped_exam_list.json"
CENTERS_JSON = "data.json"
CROPPED_IMAGES = "cropped_images"
HEATMAPS_PROVENANCE = "heatmaps_provenance.json"
PREDICTIONS_JSON = "predictions.json"
REPORT_HTML = "report.html"


def read_exam_json(exam_dir: Path, file: str, missing: str) -> Any:
    """Parse `<exam_dir>/<file>`; DataError naming exam and file when absent or not JSON.

    `missing` is the reason given when the file is absent (say which stage makes it).
    """
    exam_id = exam_dir.name
    path = exam_dir / file
    if not path.is_file():
        raise DataError(missing, exam=exam_id, file=file)
    try:
        return read_json(path)
    except (OSError, ValueError) as error:
        raise DataError(
            f"not valid JSON ({error}): fix the file or re-create it", exam=exam_id, file=file
        ) from error


def load_exam(exam_dir: Path, json_name: str) -> Exam:
    """Read and validate `<exam_dir>/<json_name>`; DataError naming the file when bad."""
    exam_dict = read_exam_json(
        exam_dir, json_name, f"{json_name} not found: each exam directory needs one"
    )
    return exam_from_dict(exam_dir.name, exam_dict, file=json_name)


def read_image(path: Path, exam: str, file: str) -> np.ndarray:
    """A greyscale PNG of an exam; DataError naming exam and file when missing or bad."""
    if not path.is_file():
        raise DataError(
            "image listed in the exam but not found: check the name in the exam's JSON "
            "(written without .png) and that the file sits beside it",
            exam=exam,
            file=file,
        )
    return read_greyscale_png(path, exam=exam, file=file)


def read_cropped_image(crop_exam_dir: Path, exam_id: str, image_name: str) -> np.ndarray:
    """A cropped mammogram, (H, W) greyscale as the crop stage stored it."""
    file = f"{CROPPED_IMAGES}/{image_name}.png"
    return read_image(crop_exam_dir / file, exam_id, file)
