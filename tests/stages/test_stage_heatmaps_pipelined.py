"""generate_heatmaps over a datum of several exams, which it pipelines (the next exam
loaded and the previous one written while one is scored), against each exam alone.

Real subprocesses on small synthetic exams and the seeded demo weights, on the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import run_stage_on, write_exam

from bcd.models.demo_weights import write_demo_weights

# Different sizes and seeds: an exam's heatmaps written under another exam's name differ.
EXAMS = {"exam-a": ((540, 500), 0), "exam-b": ((500, 520), 10), "exam-c": ((560, 480), 20)}
STAGE_ENV = {**os.environ, "BCD_TORCH_THREADS": "2"}


def run_stage(module: str, pfs: Path, *args: str) -> None:
    run_stage_on(module, pfs, *args, env=STAGE_ENV, timeout=900)


def heatmaps_root(pfs: Path, inputs: dict[str, Path], exam_ids: list[str]) -> Path:
    """A /pfs tree for generate_heatmaps: the models, and only `exam_ids` of each exam input."""
    pfs.mkdir(parents=True)
    (pfs / "models").symlink_to(inputs["models"])
    for name in ("crop", "extract_centers"):
        (pfs / name).mkdir()
        for exam_id in exam_ids:
            (pfs / name / exam_id).symlink_to(inputs[name] / exam_id)
    return pfs


def outputs(exam_out: Path) -> dict[str, bytes]:
    """Every file of one exam's output, by its path inside the exam."""
    return {
        path.relative_to(exam_out).as_posix(): path.read_bytes()
        for path in sorted(exam_out.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """crop and extract_centers run over the three exams; the demo weights."""
    root = tmp_path_factory.mktemp("upstream")
    for exam_id, (size, seed) in EXAMS.items():
        write_exam(root / "ingest" / "sample_data", exam_id, size=size, seed=seed)
    run_stage("stages.crop", root / "ingest")
    (root / "centres").mkdir()
    (root / "centres" / "crop").symlink_to(root / "ingest" / "out")
    run_stage("stages.extract_centers", root / "centres")
    write_demo_weights(root / "models")
    return {
        "crop": root / "ingest" / "out",
        "extract_centers": root / "centres" / "out",
        "models": root / "models",
    }


@pytest.fixture(scope="module")
def alone(
    tmp_path_factory: pytest.TempPathFactory, upstream: dict[str, Path]
) -> dict[str, dict[str, bytes]]:
    """Each exam's outputs from a datum holding that exam alone: nothing to overlap."""
    root = tmp_path_factory.mktemp("alone")
    results = {}
    for exam_id in EXAMS:
        pfs = heatmaps_root(root / exam_id, upstream, [exam_id])
        run_stage("stages.generate_heatmaps", pfs, "--device", "cpu")
        assert sorted(path.name for path in (pfs / "out").iterdir()) == [exam_id]
        results[exam_id] = outputs(pfs / "out" / exam_id)
    return results


def test_a_datum_of_several_exams_writes_what_each_exam_alone_writes(
    tmp_path: Path, upstream: dict[str, Path], alone: dict[str, dict[str, bytes]]
):
    pfs = heatmaps_root(tmp_path / "pfs", upstream, list(EXAMS))
    run_stage("stages.generate_heatmaps", pfs, "--device", "cpu")
    assert sorted(path.name for path in (pfs / "out").iterdir()) == sorted(EXAMS)
    for exam_id in EXAMS:
        written = outputs(pfs / "out" / exam_id)
        assert len([name for name in written if name.endswith(".hdf5")]) == 8
        assert list(written) == list(alone[exam_id]), exam_id
        for name, data in written.items():
            assert data == alone[exam_id][name], (exam_id, name)


def test_a_bad_exam_between_two_good_ones_is_its_own_error_record(
    tmp_path: Path, upstream: dict[str, Path], alone: dict[str, dict[str, bytes]]
):
    crop = tmp_path / "crop"
    shutil.copytree(upstream["crop"], crop)
    damaged = crop / "exam-b" / "cropped_images" / "exam-b_R_MLO.png"
    damaged.write_bytes(b"not a png")
    pfs = heatmaps_root(tmp_path / "pfs", {**upstream, "crop": crop}, list(EXAMS))
    run_stage("stages.generate_heatmaps", pfs, "--device", "cpu")
    for exam_id in ("exam-a", "exam-c"):
        assert outputs(pfs / "out" / exam_id) == alone[exam_id], exam_id
    bad = outputs(pfs / "out" / "exam-b")
    assert list(bad) == ["error.json"]
    record = json.loads(bad["error.json"])
    assert record["exam"] == "exam-b" and record["stage"] == "generate_heatmaps"
    assert record["file"] == "cropped_images/exam-b_R_MLO.png"
