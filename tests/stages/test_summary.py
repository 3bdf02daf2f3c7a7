"""The summary stage, on classify and visualize output trees laid out as the pipeline does."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from stages import summary

LABELS = ("left_benign", "right_benign", "left_malignant", "right_malignant")
UNVERIFIED = "UNVERIFIED WEIGHTS — not the published model; predictions are not clinical"


def probabilities(seed: float) -> dict[str, float]:
    """Four distinct probabilities with many significant digits."""
    return {label: seed + 0.0123456789012345 * (i + 1) for i, label in enumerate(LABELS)}


def write_predictions(
    pfs: Path, exam: str, models: dict[str, dict[str, float]], *, verified: bool
) -> None:
    provenance: dict[str, object] = {"verified": verified, "epochs": 10, "device": "cpu"}
    if not verified:
        provenance["warning"] = UNVERIFIED
    directory = pfs / "classify" / exam
    directory.mkdir(parents=True)
    record = {"exam": exam, "models": models, "provenance": provenance}
    (directory / "predictions.json").write_text(json.dumps(record))


def write_report(pfs: Path, exam: str) -> None:
    directory = pfs / "visualize" / exam
    directory.mkdir(parents=True)
    (directory / "report.html").write_text("<!doctype html><title>report</title>")


def write_error(pfs: Path, repo: str, record: dict[str, str]) -> None:
    directory = pfs / repo / record["exam"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "error.json").write_text(json.dumps(record))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build_run(pfs: Path) -> dict[str, dict[str, str]]:
    """Four exams: two good (one image-only model), one failed in crop, one in visualize."""
    write_predictions(
        pfs, "exam10", {"image": probabilities(0.1), "imageheatmaps": probabilities(0.2)},
        verified=True,
    )  # fmt: skip
    write_report(pfs, "exam10")
    write_predictions(pfs, "exam02", {"image": probabilities(0.3)}, verified=False)
    write_report(pfs, "exam02")
    crop_failure = {
        "exam": "exam05", "stage": "crop", "file": "5_L_CC.png", "reason": "image is all zero",
    }  # fmt: skip
    write_error(pfs, "classify", crop_failure)
    write_error(pfs, "visualize", crop_failure)  # passed through unchanged
    write_predictions(pfs, "exam07", {"image": probabilities(0.4)}, verified=True)
    visualize_failure = {
        "exam": "exam07",
        "stage": "visualize",
        "file": "heatmaps/heatmap_benign/7_R_MLO.hdf5",
        "reason": "benign heatmap from generate_heatmaps: missing",
    }
    write_error(pfs, "visualize", visualize_failure)
    return {"crop": crop_failure, "visualize": visualize_failure}


def test_summary_tables_and_index(tmp_path):
    failures = build_run(tmp_path)
    assert summary.main(["--pfs", str(tmp_path)]) == 0
    out = tmp_path / "out"

    rows = read_csv(out / "predictions.csv")
    assert list(rows[0]) == ["exam", "model", *LABELS, "verified"]
    assert [(row["exam"], row["model"]) for row in rows] == [
        ("exam02", "image"),
        ("exam07", "image"),
        ("exam10", "image"),
        ("exam10", "imageheatmaps"),
    ]
    # Full precision: the numbers read back exactly.
    assert {label: float(rows[3][label]) for label in LABELS} == probabilities(0.2)
    assert [row["verified"] for row in rows] == ["false", "true", "true", "true"]

    expected_failures = [failures["crop"], failures["visualize"]]
    assert json.loads((out / "failed_exams.json").read_text()) == expected_failures
    assert read_csv(out / "failed_exams.csv") == expected_failures

    html = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"]+)">report</a>', html)
    # One row per exam and model; exam07 has no report to link to.
    assert links == [
        "../visualize/exam02/report.html",
        "../visualize/exam10/report.html",
        "../visualize/exam10/report.html",
    ]
    assert html.count("no report") == 1
    # Side by side as the local runner lays them out, the links reach the reports.
    assert all((out / link).is_file() for link in links)
    assert UNVERIFIED in html and "exam02" in html.split("</div>")[0]  # the banner names it
    assert "image is all zero" in html and "7_R_MLO.hdf5" in html
    assert "side by side" in html
    assert "0.1123" in html  # 4 decimals on the page


def test_all_verified_means_no_banner(tmp_path):
    write_predictions(tmp_path, "a", {"image": probabilities(0.1)}, verified=True)
    write_report(tmp_path, "a")
    assert summary.main(["--pfs", str(tmp_path)]) == 0
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "UNVERIFIED" not in html and 'class="banner"' not in html
    assert json.loads((tmp_path / "out" / "failed_exams.json").read_text()) == []
    assert (tmp_path / "out" / "failed_exams.csv").read_text() == "exam,stage,file,reason\n"


def test_unreadable_predictions_become_a_summary_error(tmp_path):
    (tmp_path / "classify" / "broken").mkdir(parents=True)
    (tmp_path / "classify" / "broken" / "predictions.json").write_text("{not json")
    write_predictions(tmp_path, "fine", {"image": probabilities(0.1)}, verified=True)
    assert summary.main(["--pfs", str(tmp_path)]) == 0
    [record] = json.loads((tmp_path / "out" / "failed_exams.json").read_text())
    assert record["exam"] == "broken" and record["stage"] == "summary"
    assert record["file"] == "predictions.json" and "JSON" in record["reason"]
    assert [row["exam"] for row in read_csv(tmp_path / "out" / "predictions.csv")] == ["fine"]
    assert summary.main(["--pfs", str(tmp_path), "--strict"]) == 1
