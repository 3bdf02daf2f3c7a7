"""`bcd run` with the project's real specs on small synthetic exams, as a user runs it."""

import csv
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO, VIEWS, write_exam

from stages.io.exam_files import EXAM_JSON, EXAMPLE_EXAM_LIST

BCD = str(Path(sys.executable).with_name("bcd"))
PIPELINES = ("crop", "extract_centers", "generate_heatmaps", "classify", "visualize", "summary")


def bcd_run(
    data: Path, models: Path, out: Path, *extra: str, pipelines: Path = REPO / "pipelines"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            BCD, "run", "--data", str(data), "--models", str(models), "--out", str(out),
            "--pipelines", str(pipelines), "--env", "BCD_EPOCHS=2",
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


def assert_same_crops(crop_dir: Path, other_crop_dir: Path) -> None:
    """Two crop outputs of one exam hold byte-identical cropped images."""
    names = sorted(path.name for path in (crop_dir / "cropped_images").iterdir())
    assert names == sorted(path.name for path in (other_crop_dir / "cropped_images").iterdir())
    for name in names:
        assert (crop_dir / "cropped_images" / name).read_bytes() == (
            other_crop_dir / "cropped_images" / name
        ).read_bytes(), name


def test_example_layout_exams_through_the_dag_and_the_single_stage_variant(tmp_path, models):
    """Exam folders as Pachyderm's breast-cancer-detection example ships them (no
    exam.json) go through to predictions, cropped exactly like their exam.json form."""
    data, out = tmp_path / "sample_data", tmp_path / "output"
    write_exam(data, "0", seed=7, size=(640, 480), layout="example")
    write_exam(data, "1", flip="YES", seed=8, size=(640, 480), layout="example")
    shutil.copytree(data / "0", data / "0-json")
    (exam,) = pickle.loads((data / "0-json" / EXAMPLE_EXAM_LIST).read_bytes())
    (data / "0-json" / EXAMPLE_EXAM_LIST).unlink()
    (data / "0-json" / EXAM_JSON).write_text(json.dumps(exam))

    run = bcd_run(data, models, out)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = list(csv.DictReader((out / "summary" / "predictions.csv").open()))
    assert {(row["exam"], row["model"]) for row in rows} == {
        (exam_id, model) for exam_id in ("0", "0-json", "1") for model in ("image", "imageheatmaps")
    }
    assert json.loads((out / "summary" / "failed_exams.json").read_text()) == []
    assert (out / "visualize" / "1" / "report.html").is_file()
    listed = json.loads((out / "crop" / "1" / "cropped_exam_list.json").read_text())
    assert listed["horizontal_flip"] == "YES"
    assert [listed[view] for view in VIEWS] == [[view.replace("-", "_")] for view in VIEWS]
    assert (out / "crop" / "0" / "cropped_exam_list.json").read_text() == (
        out / "crop" / "0-json" / "cropped_exam_list.json"
    ).read_text()
    assert_same_crops(out / "crop" / "0", out / "crop" / "0-json")

    # single_stage runs crop on the same folder inside its one datum.
    single_data, single_out = tmp_path / "single_data", tmp_path / "single_output"
    shutil.copytree(data / "1", single_data / "1")
    single = bcd_run(single_data, models, single_out, pipelines=REPO / "pipelines" / "single-stage")
    assert single.returncode == 0, single.stdout + single.stderr
    stages_out = single_out / "breast_cancer"
    assert_same_crops(out / "crop" / "1", stages_out / "crop" / "1")
    predictions = json.loads((stages_out / "classify" / "1" / "predictions.json").read_text())
    assert predictions["provenance"]["epochs"] == 2
