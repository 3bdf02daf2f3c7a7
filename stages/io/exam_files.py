"""Reading an exam (its JSON or exam list) and its images from a stage input; errors name files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stages.core.errors import DataError, shown
from stages.core.exam import Exam, exam_from_dict
from stages.io.exam_lists import load_exam_list
from stages.io.images import read_greyscale_png
from stages.io.pfs import read_json

EXAM_JSON = "exam.json"
# Pachyderm's breast-cancer-detection example ships each sample_data exam folder with
# this pickle instead: a list holding that folder's one NYU exam dict.
EXAMPLE_EXAM_LIST = "gen_exam_list_before_cropping.pkl"
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
    except ValueError as error:  # an OSError reading it is a fault, not the file's content
        raise DataError(
            f"not valid JSON ({error}): fix the file or re-create it", exam=exam_id, file=file
        ) from error


def load_exam(exam_dir: Path, json_name: str) -> Exam:
    """Read and validate `<exam_dir>/<json_name>`; DataError naming the file when bad."""
    exam_dict = read_exam_json(
        exam_dir, json_name, f"{json_name} not found: each exam directory needs one"
    )
    return exam_from_dict(exam_dir.name, exam_dict, file=json_name)


def load_input_exam(exam_dir: Path) -> Exam:
    """The exam of a `sample_data` folder: its exam.json, else the Pachyderm example's
    gen_exam_list_before_cropping.pkl; DataError naming the file when bad.

    A folder holding both has both read: they must describe the same exam (then taken
    from exam.json), since when they disagree neither is safe to trust.
    """
    exam_id = exam_dir.name
    if not (exam_dir / EXAMPLE_EXAM_LIST).is_file():
        exam_dict = read_exam_json(
            exam_dir,
            EXAM_JSON,
            f"{EXAM_JSON} not found: each exam directory needs one (or, as in Pachyderm's "
            f"breast-cancer-detection example, {EXAMPLE_EXAM_LIST})",
        )
        return exam_from_dict(exam_id, exam_dict, file=EXAM_JSON)
    listed = exam_from_dict(exam_id, read_example_exam_dict(exam_dir), file=EXAMPLE_EXAM_LIST)
    if not (exam_dir / EXAM_JSON).is_file():
        return listed
    given = load_exam(exam_dir, EXAM_JSON)
    if given != listed:
        as_json, as_listed = given.to_dict(), listed.to_dict()
        differences = "; ".join(
            f"{key}: {shown(as_json.get(key))} vs {shown(as_listed.get(key))}"
            for key in dict.fromkeys([*as_json, *as_listed])
            if as_json.get(key) != as_listed.get(key)
        )
        raise DataError(
            f"{EXAM_JSON} and {EXAMPLE_EXAM_LIST} describe different exams ({differences}): "
            "delete the wrong one, or make them agree",
            exam=exam_id,
            file=EXAMPLE_EXAM_LIST,
        )
    return given


def read_example_exam_dict(exam_dir: Path) -> Any:
    """The one exam dict in `<exam_dir>/gen_exam_list_before_cropping.pkl`, unpickled
    without running code; DataError naming exam and file when refused or not one exam.

    The pickle is not validated as an exam here: callers do (`exam_from_dict`, ingest).
    """
    exam_id = exam_dir.name
    try:
        exams = load_exam_list(exam_dir / EXAMPLE_EXAM_LIST)
    except DataError as error:
        raise DataError(
            f"{error.reason} (nothing in it was run); re-create it as a list holding this "
            f"folder's one exam dict, or write {EXAM_JSON} instead",
            exam=exam_id,
            file=EXAMPLE_EXAM_LIST,
        ) from error
    if len(exams) != 1:
        raise DataError(
            f"the exam list holds {len(exams)} exams, not 1: an exam folder holds one exam "
            "(its own images); give each exam its own folder and list, or run bcd ingest "
            "on an NYU exam list to split it into exam folders",
            exam=exam_id,
            file=EXAMPLE_EXAM_LIST,
        )
    (exam_dict,) = exams
    if not isinstance(exam_dict, dict):
        raise DataError(
            f"the exam list must hold an exam dict, not {type(exam_dict).__name__}",
            exam=exam_id,
            file=EXAMPLE_EXAM_LIST,
        )
    return exam_dict


def read_image(path: Path, exam: str, file: str) -> np.ndarray:
    """A greyscale PNG of an exam; DataError naming exam and file when missing or bad."""
    if not path.is_file():
        raise DataError(
            "image listed in the exam but not found: check the name in exam.json or the "
            "exam list (written without .png) and that the file sits beside it",
            exam=exam,
            file=file,
        )
    return read_greyscale_png(path, exam=exam, file=file)


def read_cropped_image(crop_exam_dir: Path, exam_id: str, image_name: str) -> np.ndarray:
    """A cropped mammogram, (H, W) greyscale as the crop stage stored it."""
    file = f"{CROPPED_IMAGES}/{image_name}.png"
    return read_image(crop_exam_dir / file, exam_id, file)
