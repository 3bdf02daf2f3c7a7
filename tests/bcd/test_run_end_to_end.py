"""`bcd run` with the project's real specs on small synthetic exams, as a user runs it."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO, write_exam

BCD = str(Path(sys.executable).with_name("bcd"))
PIPELINES = ("crop", "extract_centers", "generate_heatmaps", "classify", "visualize", "summary")


def bcd_run(data: Path, models: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            BCD, "run", "--data", str(data), "--models", str(models), "--out", str(out),
            "--pipelines", str(REPO / "pipelines"), "--env", "BCD_EPOCHS=2",
            "--summary-json", str(out / "run-summary.json"), *extra,
        ],
        capture_output=True, text=True, timeout=1500,
    )  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    subprocess.run([BCD, "models", "demo", str(directory)], check=True, capture_output=True)
    return directory


def test_full_dag_then_incremental_rerun_then_a_bad_exam(tmp_path, models):
    data, out = tmp_path / "sample_data", tmp_path / "output"
    write_exam(data, "exam-a", seed=5)

    first = bcd_run(data, models, out)
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((out / "run-summary.json").read_text())
    processed = {job["pipeline"]: job["processed"] for job in summary["pipelines"]}
    assert processed == {name: 1 for name in PIPELINES}
    rows = list(csv.DictReader((out / "summary" / "predictions.csv").open()))
    assert {row["exam"] for row in rows} == {"exam-a"}
    assert {row["model"] for row in rows} == {"image", "imageheatmaps"}
    assert all(0 < float(row["left_malignant"]) < 1 for row in rows)
    assert (out / "visualize" / "exam-a" / "report.html").is_file()
    assert "exam-a/report.html" in (out / "summary" / "index.html").read_text()
    predictions = json.loads((out / "classify" / "exam-a" / "predictions.json").read_text())
    assert predictions["provenance"]["verified"] is False
    assert predictions["provenance"]["epochs"] == 2

    second = bcd_run(data, models, out)
    assert second.returncode == 0, second.stderr
    jobs = json.loads((out / "run-summary.json").read_text())["pipelines"]
    assert all(job["processed"] == 0 and job["skipped"] == 1 for job in jobs)

    write_exam(data, "exam-black", seed=6)
    cv2.imwrite(str(data / "exam-black" / "exam-black_R_CC.png"), np.zeros((900, 700), np.uint16))
    third = bcd_run(data, models, out)
    assert third.returncode == 1  # an exam has an error record
    assert "exam-black" in third.stdout + third.stderr
    failed = json.loads((out / "summary" / "failed_exams.json").read_text())
    assert [record["exam"] for record in failed] == ["exam-black"]
    assert failed[0]["stage"] == "crop" and "no breast tissue" in failed[0]["reason"]
    jobs = {
        job["pipeline"]: job
        for job in json.loads((out / "run-summary.json").read_text())["pipelines"]
    }
    assert jobs["generate_heatmaps"]["processed"] == 1 and jobs["generate_heatmaps"]["skipped"] == 1
    assert (out / "classify" / "exam-a" / "predictions.json").is_file()
