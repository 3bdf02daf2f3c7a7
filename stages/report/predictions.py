"""The classify stage's predictions.json: parsed and checked, for reports and the summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.core.errors import DataError, shown
from stages.core.exam import LABELS
from stages.io.exam_files import PREDICTIONS_JSON, read_exam_json
from stages.nets.provenance import UNVERIFIED_WARNING

# Known models in display order, with the names people read.
MODEL_TITLES: dict[str, str] = {"image": "image-only", "imageheatmaps": "image + heatmaps"}
# The banner's text when provenance says unverified but carries no warning of its own.
DEFAULT_WARNING = UNVERIFIED_WARNING


@dataclass(frozen=True)
class ExamPredictions:
    """Per-model probabilities of one exam, and how they were made."""

    exam_id: str
    # model name -> label -> probability, known models first.
    models: dict[str, dict[str, float]]
    provenance: dict[str, Any]

    @property
    def verified(self) -> bool:
        """True only when provenance says so explicitly: anything else is unverified."""
        return self.provenance.get("verified") is True

    @property
    def warning(self) -> str:
        """The text of the unverified-weights banner."""
        return str(self.provenance.get("warning") or DEFAULT_WARNING)


def parse_predictions(
    exam_id: str, record: Any, *, file: str = PREDICTIONS_JSON
) -> ExamPredictions:
    """Check a predictions.json object; DataError naming `file` if it is malformed."""

    def fail(reason: str) -> DataError:
        return DataError(reason, exam=exam_id, file=file)

    if not isinstance(record, dict):
        raise fail("must hold a JSON object")
    if record.get("exam") != exam_id:
        raise fail(f'"exam" is {shown(record.get("exam"))}, expected {exam_id!r}')
    models = record.get("models")
    if not isinstance(models, dict) or not models:
        raise fail('"models" must map at least one model name to its four probabilities')
    provenance = record.get("provenance", {})
    if not isinstance(provenance, dict):
        raise fail('"provenance" must be a JSON object')
    parsed: dict[str, dict[str, float]] = {}
    for name in sorted(models, key=_model_order):
        probabilities = models[name]
        if not isinstance(probabilities, dict):
            raise fail(f"model {shown(name)} must map the labels to probabilities")
        parsed[name] = {}
        for label in LABELS:
            value = probabilities.get(label)
            # Compared as they are (NaN and infinities fail too): a huge int has no float.
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0.0 <= value <= 1.0
            ):
                raise fail(
                    f'model {shown(name)}: "{label}" must be a probability in [0, 1], '
                    f"not {shown(value)}"
                )
            parsed[name][label] = float(value)
    return ExamPredictions(exam_id, parsed, provenance)


def read_predictions(classify_exam_dir: Path, exam_id: str) -> ExamPredictions:
    """Read and check `<classify>/<exam>/predictions.json`."""
    record = read_exam_json(
        classify_exam_dir, PREDICTIONS_JSON, f"no {PREDICTIONS_JSON} from the classify stage"
    )
    return parse_predictions(exam_id, record)


def model_title(name: str) -> str:
    """How a model is named in reports."""
    return MODEL_TITLES.get(name, name)


def _model_order(name: str) -> tuple[int, str]:
    known = list(MODEL_TITLES)
    return (known.index(name) if name in known else len(known), name)
