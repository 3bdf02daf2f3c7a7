"""The torch stages under datum batching, through `bcd run` and its real worker API.

The committed specs batch generate_heatmaps, classify and the single stage; each run here
is compared with the same specs rendered without batching (one process per datum). Small
synthetic exams and one augmentation epoch keep every datum to a few seconds; the runs'
times are printed (`pytest -s`), not asserted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, write_exam

from bcd.bench.ours import patch_counts
from bcd.models.demo_weights import write_demo_weights
from stages.progress import PROGRESS_FILE_ENV

BCD = str(Path(sys.executable).with_name("bcd"))
EXAMS = ("exam-0", "exam-1", "exam-2")
# What the runner writes in a batching worker's log, and what the stages write there.
STARTED = "=== bcd run: user code started"
DATUM_LINE = "=== bcd run: datum "
LOADED = re.compile(r"weights loaded: sample_patch_model\.p \(sha256 (\w+)\)")


def bcd_run(
    pipelines: Path, data: Path, models: Path, out: Path, *extra: str
) -> tuple[dict[str, Any], float]:
    """`bcd run` on one worker, so that batched or not the stages get the same torch
    threads; its summary, and how long it took."""
    summary = out.parent / f"{out.name}-summary.json"
    start = time.monotonic()
    done = subprocess.run(
        [
            BCD, "run", "--pipelines", str(pipelines), "--data", str(data),
            "--models", str(models), "--out", str(out), "--workers", "1",
            "--env", "BCD_EPOCHS=1", "--summary-json", str(summary), *extra,
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert summary.is_file(), done.stdout + done.stderr
    return json.loads(summary.read_text()), seconds


def unbatched_copy(folder: Path, into: Path) -> Path:
    """The specs of `folder` with datum batching taken out: one process per datum."""
    into.mkdir()
    for path in folder.glob("*.json"):
        spec = json.loads(path.read_text())
        if spec["transform"].pop("datum_batching", False):
            del spec["datum_set_spec"]
            del spec["transform"]["env"]["BCD_DATUM_BATCHING"]
        (into / path.name).write_text(json.dumps(spec, indent=2))
    return into


def outputs(folder: Path) -> dict[str, bytes]:
    """Every published file under a folder (the runner's own .bcd/ left out)."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".bcd" not in path.relative_to(folder).parts
    }


def worker_log(out: Path, pipeline: str) -> str:
    return (out / ".bcd" / "logs" / pipeline / "worker-0.log").read_text()


def served(log: str) -> list[str]:
    """The log of each datum handed to the code, from its `datum ...` line to the next."""
    return re.split(f"^(?={re.escape(DATUM_LINE)})", log, flags=re.M)[1:]


def seconds_by_pipeline(summary: dict[str, Any]) -> dict[str, float]:
    return {job["pipeline"]: job["seconds"] for job in summary["pipelines"]}


def patch_model_sha256(models: Path) -> str:
    return hashlib.sha256((models / "sample_patch_model.p").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    write_demo_weights(directory)
    return directory


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("sample_data")
    for seed, exam in enumerate(EXAMS):
        write_exam(directory, exam, size=(380, 480), seed=seed)
    return directory


@pytest.fixture(scope="module")
def dag_runs(tmp_path_factory, sample_data, models) -> dict[str, Path]:
    """The whole DAG on the exams, batched (the committed specs) and unbatched."""
    work = tmp_path_factory.mktemp("dag")
    runs = {}
    for name, pipelines in (
        ("batched", REPO / "pipelines"),
        ("unbatched", unbatched_copy(REPO / "pipelines", work / "specs")),
    ):
        summary, seconds = bcd_run(pipelines, sample_data, models, work / name)
        assert summary["ok"], summary
        print(f"\n{name} DAG, {len(EXAMS)} exams: {seconds:.1f} s {seconds_by_pipeline(summary)}")
        runs[name] = work / name
    return runs


def test_batched_stages_write_what_unbatched_ones_do_one_process_a_set(dag_runs):
    batched, unbatched = dag_runs["batched"], dag_runs["unbatched"]
    written = outputs(batched)
    assert written == outputs(unbatched)  # every byte, provenance included
    for pipeline in ("generate_heatmaps", "classify"):
        exams = {path.split("/")[1] for path in written if path.startswith(f"{pipeline}/")}
        assert exams == set(EXAMS)
        log = worker_log(batched, pipeline)
        # One process served the three datums and loaded the weights once.
        assert log.count(STARTED) == 1, log
        assert len(served(log)) == len(EXAMS)
        assert log.count("weights loaded:") == 1
        # Unbatched: a process, and a log, per datum.
        assert len(list((unbatched / ".bcd" / "logs" / pipeline).glob("*.log"))) == len(EXAMS)


def test_single_stage_batched_writes_what_it_writes_unbatched(tmp_path, sample_data, models):
    folder = REPO / "pipelines" / "single-stage"
    batched, seconds = bcd_run(folder, sample_data, models, tmp_path / "batched")
    unbatched, unbatched_seconds = bcd_run(
        unbatched_copy(folder, tmp_path / "specs"), sample_data, models, tmp_path / "unbatched"
    )
    print(
        f"\nsingle stage, {len(EXAMS)} exams: batched {seconds:.1f} s, "
        f"unbatched {unbatched_seconds:.1f} s"
    )
    assert batched["ok"] and unbatched["ok"], (batched, unbatched)
    written = outputs(tmp_path / "batched")
    assert written == outputs(tmp_path / "unbatched")
    reports = {path for path in written if path.endswith("/report.html")}
    assert reports == {f"breast_cancer/visualize/{exam}/report.html" for exam in EXAMS}
    log = worker_log(tmp_path / "batched", "breast_cancer")
    assert log.count(STARTED) == 1 and len(served(log)) == len(EXAMS), log


def union_of_models(groups: dict[str, str]) -> dict[str, Any]:
    """generate_heatmaps (batched, one set) over exam groups `<group>-*`, each crossed with
    its own models repo, all named `models`: one process meets every group's weights."""
    spec = json.loads((REPO / "pipelines" / "cpu" / "generate_heatmaps.json").read_text())
    exams, _models = spec["input"]["cross"]
    branches = []
    for group, repo in groups.items():
        join = copy.deepcopy(exams)
        for part in join["join"]:
            part["pfs"]["glob"] = f"/({group}-*)"
        branches.append({"cross": [join, {"pfs": {"repo": repo, "name": "models", "glob": "/"}}]})
    spec["input"] = {"union": branches}
    spec["datum_set_spec"] = {"number": 10}
    return spec


def test_weights_reload_on_new_models_faults_are_retried_data_errors_recorded(
    tmp_path, dag_runs, models
):
    """One batched generate_heatmaps meets exams of two models commits (a-*, b-*), a
    broken checkpoint (c-0: a genuine fault, retried in fresh processes until datum_tries
    runs out) and an exam with a data error (a-bad: an error record, the datum succeeds)."""
    previous = dag_runs["unbatched"]
    repos = tmp_path / "repos"
    for exam in ("a-0", "a-bad", "b-0", "c-0"):
        for repo in ("crop", "extract_centers"):
            shutil.copytree(previous / repo / "exam-0", repos / repo / exam)
    (repos / "extract_centers" / "a-bad" / "data.json").write_text("{ not json")
    models_b, models_c = tmp_path / "models_b", tmp_path / "models_c"
    models_b.mkdir()
    write_demo_weights(models_b, seed=1)
    shutil.copytree(models, models_c)
    (models_c / "sample_patch_model.p").write_bytes(b"not a checkpoint")
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = union_of_models({"a": "models", "b": "models_b", "c": "models_c"})
    (specs / "generate_heatmaps.json").write_text(json.dumps(spec))
    repo_args = [
        f"--repo={name}={folder}"
        for name, folder in (
            ("crop", repos / "crop"),
            ("extract_centers", repos / "extract_centers"),
            ("models_b", models_b),
            ("models_c", models_c),
        )
    ]
    (tmp_path / "sample_data").mkdir()
    out = tmp_path / "out"
    summary, _seconds = bcd_run(specs, tmp_path / "sample_data", models, out, *repo_args)

    (job,) = summary["pipelines"]
    assert (job["status"], job["processed"], job["failed"]) == ("failed", 3, 1), job
    (failure,) = job["failures"]
    assert "crop:/c-0/" in failure["inputs"]
    assert "user code reported an error: bcd generate_heatmaps: exit code 2" in failure["reason"]
    log = worker_log(out, "generate_heatmaps")
    assert log.count("models/sample_patch_model.p: refused: not made of tensors") == 3

    heatmaps = out / "generate_heatmaps"
    a0, b0 = outputs(heatmaps / "a-0"), outputs(heatmaps / "b-0")
    assert a0 == outputs(previous / "generate_heatmaps" / "exam-0")  # as unbatched
    assert b0.keys() == a0.keys() and b0 != a0
    sha256 = {"a": patch_model_sha256(models), "b": patch_model_sha256(models_b)}
    assert json.loads(b0["heatmaps_provenance.json"])["patch_model"]["sha256"] == sha256["b"]
    record = json.loads((heatmaps / "a-bad" / "error.json").read_text())
    assert (record["exam"], record["stage"]) == ("a-bad", "generate_heatmaps")
    assert "not valid JSON" in record["reason"]
    assert not (heatmaps / "c-0").exists()

    # Each process loaded the weights for its first good datum and again only where the
    # models changed; c-0's failures ended the process each time.
    loaded, expected = [], []
    held = None
    for datum in served(log):
        if STARTED in datum:
            held = None
        loaded += LOADED.findall(datum)
        group = re.search(r"\[crop:/(\w)-", datum)[1]
        if group != "c" and group != held:
            expected.append(sha256[group][:12])
            held = group
    assert loaded == expected
    assert set(loaded) == {sha256["a"][:12], sha256["b"][:12]}


def last_progress(log: str) -> list[str]:
    return re.findall(r"^=== bcd run: last progress: (.*)$", log, flags=re.M)


def test_each_datum_reports_its_exam_and_steps_batched_or_not(dag_runs):
    """The stages' progress reached the runner: each datum's last record, in its log."""
    batched, unbatched = dag_runs["batched"], dag_runs["unbatched"]
    # What generate_heatmaps runs through the network, counted again from its inputs.
    scored = {exam: patch_counts(batched, exam).scored for exam in EXAMS}
    expected = {
        "generate_heatmaps": [f"{exam}: {scored[exam]}/{scored[exam]} patches" for exam in EXAMS],
        "classify": [f"{exam}: 1/1 epochs" for exam in EXAMS],  # BCD_EPOCHS=1
    }
    for pipeline, records in expected.items():
        assert last_progress(worker_log(batched, pipeline)) == records
        logs = (unbatched / ".bcd" / "logs" / pipeline).glob("*.log")
        assert sorted(record for log in logs for record in last_progress(log.read_text())) == (
            records
        )


def test_a_stage_writes_its_progress_only_where_it_is_told(tmp_path, dag_runs, models):
    """BCD_PROGRESS_FILE set or not, the stage's outputs are the same files, byte for
    byte, and nothing else appears under the pfs root; set, the record is in that file."""
    previous = dag_runs["unbatched"]
    runs = {}
    for name, extra in (
        ("told", {PROGRESS_FILE_ENV: str(tmp_path / "progress.json")}),
        ("not", {}),
    ):
        root = tmp_path / name
        for repo in ("crop", "extract_centers"):
            shutil.copytree(previous / repo / "exam-0", root / repo / "exam-0")
        shutil.copytree(models, root / "models")
        runs[name] = root
        env = {k: v for k, v in os.environ.items() if k != PROGRESS_FILE_ENV}
        done = subprocess.run(
            [sys.executable, "-m", "stages.generate_heatmaps", "--pfs", str(root)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    assert outputs(runs["told"]) == outputs(runs["not"])
    assert "exam-0/heatmaps_provenance.json" in outputs(runs["told"] / "out")
    written = json.loads((tmp_path / "progress.json").read_text())
    scored = patch_counts(previous, "exam-0").scored
    assert (written["stage"], written["exam"], written["unit"]) == (
        "generate_heatmaps",
        "exam-0",
        "patches",
    )
    assert written["done"] == written["total"] == scored
    assert sorted(path.name for path in tmp_path.iterdir()) == ["not", "progress.json", "told"]
