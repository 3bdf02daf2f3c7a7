"""Self-contained HTML pages: one exam's report, and the index of all exams."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from stages.core.exam import LABELS
from stages.report import templates
from stages.report.overlays import FULL_PROBABILITY_ALPHA, GREEN, RED, colour_bar
from stages.report.png import png_data_uri
from stages.report.predictions import DEFAULT_WARNING, MODEL_TITLES, ExamPredictions, model_title

# Radiological hanging, row by row: the patient's right side on the viewer's left.
HANGING: tuple[tuple[str, str], ...] = (("R-CC", "L-CC"), ("R-MLO", "L-MLO"))

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.DictLoader(
        {"exam_report": templates.EXAM_REPORT, "summary_index": templates.SUMMARY_INDEX}
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class ViewImage:
    """One image's overlay figure as shown in the report."""

    view: str
    image_name: str
    png: bytes  # the embedded (downscaled) copy
    full_resolution_file: str  # relative link to the full-size overlay PNG


def exam_report_html(predictions: ExamPredictions, images: Sequence[ViewImage]) -> str:
    """The exam's report page, its images embedded."""
    models = [
        {"title": model_title(name), "probabilities": predictions.models.get(name)}
        for name in [*MODEL_TITLES, *(m for m in predictions.models if m not in MODEL_TITLES)]
    ]
    cells = [
        [
            {
                "view": image.view,
                "image_name": image.image_name,
                "full_resolution_file": image.full_resolution_file,
                "data_uri": png_data_uri(image.png),
            }
            for image in images
            if image.view == view
        ]
        for row in HANGING
        for view in row
    ]
    return _ENVIRONMENT.get_template("exam_report").render(
        style=templates.STYLE,
        exam_id=predictions.exam_id,
        verified=predictions.verified,
        warning=predictions.warning,
        labels=_label_rows(),
        models=models,
        provenance=flatten_provenance(predictions.provenance),
        cells=cells,
        full_alpha=FULL_PROBABILITY_ALPHA,
        legend=[
            {"label": "malignant", "text_colour": "#ff8080", "gradient": _css_gradient(RED)},
            {"label": "benign", "text_colour": "#86e386", "gradient": _css_gradient(GREEN)},
        ],
    )


def summary_index_html(
    predictions: Sequence[ExamPredictions],
    report_links: Mapping[str, str],
    failures: Sequence[Mapping[str, Any]],
    *,
    exam_count: int,
) -> str:
    """The summary page: each exam's predictions (a row per model) and report link,
    then the failed exams with their reasons."""
    unverified = [exam for exam in predictions if not exam.verified]
    rows = [
        {
            "exam_id": exam.exam_id,
            "model_title": model_title(model),
            "probabilities": probabilities,
            "verified": exam.verified,
            "report_link": report_links.get(exam.exam_id),
        }
        for exam in predictions
        for model, probabilities in exam.models.items()
    ]
    return _ENVIRONMENT.get_template("summary_index").render(
        style=templates.STYLE,
        warning=unverified[0].warning if unverified else DEFAULT_WARNING,
        unverified_exams=[exam.exam_id for exam in unverified],
        exam_count=exam_count,
        predicted_count=len(predictions),
        failed_count=len({failure["exam"] for failure in failures}),
        labels=_label_rows(),
        rows=rows,
        failures=failures,
    )


def flatten_provenance(provenance: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted key, text) pairs, nested objects unrolled; the verified flag and warning
    are left out because the page shows them on their own."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, str):
            pairs.append((prefix, value))
        else:
            pairs.append((prefix, json.dumps(value)))

    for key, value in provenance.items():
        if key not in ("verified", "warning"):
            walk(str(key), value)
    return pairs


def _css_gradient(colour: tuple[int, int, int]) -> str:
    """The colour bar of the overlay figures as a CSS gradient (the tint is linear in p)."""
    ends = colour_bar(length=2, thickness=1, colour=colour)[0]
    low, high = (f"rgb({r}, {g}, {b})" for r, g, b in ends.tolist())
    return f"linear-gradient(to right, {low}, {high})"


def _label_rows() -> list[dict[str, str]]:
    return [
        {
            "name": label,
            "title": label.replace("_", " "),
            "kind": "malignant" if label.endswith("malignant") else "benign",
        }
        for label in LABELS
    ]
