"""How far two runs' outputs are apart: heatmaps (HDF5) and exam predictions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np

from stages.core.exam import LABELS
from stages.io.exam_files import PREDICTIONS_JSON
from stages.io.heatmaps_h5 import HEATMAPS_DIR

CLASSIFIERS = ("image", "imageheatmaps")


def _heatmap(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as h5:
        return np.asarray(h5["image"], dtype=np.float64)


def heatmap_difference(exam_a: Path, exam_b: Path) -> dict[str, float | int]:
    """Max and mean absolute difference over every heatmap pixel the two exams share.

    `exam_*` hold heatmaps/heatmap_<kind>/<image>.hdf5 (ours and the reference's layout).
    ValueError when a heatmap of `exam_a` is missing from `exam_b` or differs in shape.
    """
    files = sorted((exam_a / HEATMAPS_DIR).glob("heatmap_*/*.hdf5"))
    if not files:
        raise ValueError(f"{exam_a}: no heatmaps")
    largest, total, pixels = 0.0, 0.0, 0
    for file in files:
        other = exam_b / file.relative_to(exam_a)
        a, b = _heatmap(file), _heatmap(other) if other.is_file() else None
        if b is None or a.shape != b.shape:
            raise ValueError(f"{other}: missing or not the shape of {file}")
        difference = np.abs(a - b)
        largest = max(largest, float(difference.max()))
        total += float(difference.sum())
        pixels += difference.size
    return {"max_abs": largest, "mean_abs": total / pixels, "files": len(files)}


def our_predictions(exam_dir: Path) -> dict[str, np.ndarray]:
    """Per classifier, the (4,) label probabilities in LABELS order from predictions.json."""
    models = json.loads((exam_dir / PREDICTIONS_JSON).read_text())["models"]
    return {name: np.array([values[label] for label in LABELS]) for name, values in models.items()}


def reference_predictions(work: Path) -> dict[str, np.ndarray]:
    """Per classifier, the reference's CSV row (rounded to 4 decimals) in LABELS order."""
    found = {}
    for name in CLASSIFIERS:
        path = work / f"{name}_predictions.csv"
        if path.is_file():
            with path.open(newline="") as handle:
                row = next(csv.DictReader(handle))
            found[name] = np.array([float(row[label]) for label in LABELS])
    return found


def prediction_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """The largest absolute difference of any label probability, over shared classifiers."""
    shared = sorted(a.keys() & b.keys())
    if not shared:
        raise ValueError("no classifier in common")
    return max(float(np.max(np.abs(a[name] - b[name]))) for name in shared)
