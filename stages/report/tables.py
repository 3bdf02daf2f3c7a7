"""CSV text of the summary's tables."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from stages.core.exam import LABELS
from stages.report.collect import ERROR_FIELDS
from stages.report.predictions import ExamPredictions

# `verified` travels with every row so that a copied CSV still says whether the
# weights were the published ones.
PREDICTION_FIELDS: tuple[str, ...] = ("exam", "model", *LABELS, "verified")


def predictions_csv(predictions: Sequence[ExamPredictions]) -> str:
    """One row per exam and model, probabilities at full precision (shortest repr)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_FIELDS)
    for exam in predictions:
        for model, probabilities in exam.models.items():
            values = [repr(probabilities[label]) for label in LABELS]
            writer.writerow([exam.exam_id, model, *values, str(exam.verified).lower()])
    return buffer.getvalue()


def failures_csv(failures: Sequence[Mapping[str, Any]]) -> str:
    """One row per error record: exam, stage, file, reason."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ERROR_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(failures)
    return buffer.getvalue()
