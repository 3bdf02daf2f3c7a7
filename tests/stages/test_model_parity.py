"""Heatmap and classifier parity with the NYU reference, on the seeded demo weights.

The expected values in tests/data/reference/models/ were measured by running the
reference itself on the same demo weights (see tests/data/reference/README.md). Here the
inputs are rebuilt, our crop and extract_centers stages prepare the /pfs tree, and our
generate_heatmaps and classify stages run as real subprocesses on the CPU, on the OpenVINO
backend (what auto picks on a CPU) and, for one small case, on torch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import REFERENCE, python_module_cmd, run_stage_on, write_case_exam

EXPECTED = REFERENCE / "models"
TOLERANCE = 1e-5
MODELS = ("image", "imageheatmaps")
KINDS = ("malignant", "benign")
SMALL_CASES = ("small-mixed", "small-mixed-yes")
# (case, backend) of the small-exam runs: every case on OpenVINO, the CPU default; one on
# torch, which runs on CUDA and wherever it is asked for.
SMALL_RUNS = (*((case, "openvino") for case in SMALL_CASES), ("small-mixed", "torch"))
FULL_SIZE_CASE = "demo-0001"
# Crops deeper and taller than the windows plus their noise margins: the classifier's
# windows follow best_center, and the crop noise is clamped by the image edges.
UNPADDED_CASE = "wide"
# Two augmented epochs already run every random draw of the reference's stream in order
# (an epoch's draws depend on what the one before consumed) at a fifth of ten's cost.
CLASSIFY_FLAGS = {
    "augmentation_2_epochs": ("--epochs", "2"),
    "no_augmentation": ("--no-augmentation",),
}
# Two threads per stage, as on CI's two cores; without it torch may oversubscribe.
STAGE_ENV = {**os.environ, "BCD_TORCH_THREADS": "2"}


def load_expected(case: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The case's JSON record, and its heatmap samples (none stored for some cases)."""
    expected = json.loads((EXPECTED / f"{case}.json").read_text())
    samples = EXPECTED / f"{case}.npz"
    if not samples.is_file():
        return expected, {}
    with np.load(samples) as arrays:
        return expected, dict(arrays)


def run_stage(module: str, pfs: Path, *args: str) -> None:
    run_stage_on(module, pfs, *args, env=STAGE_ENV)


def stage_root(root: Path, name: str, inputs: dict[str, Path]) -> Path:
    """A /pfs tree for one stage: its inputs linked in by Pachyderm input name."""
    pfs = root / name
    pfs.mkdir()
    for input_name, target in inputs.items():
        (pfs / input_name).symlink_to(target)
    return pfs


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bcd models demo` output; must be the very files the reference ran with."""
    directory = tmp_path_factory.mktemp("models")
    done = subprocess.run(
        python_module_cmd("bcd.cli", "models", "demo", str(directory)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return directory


def check_demo_weights(models: Path, expected: dict) -> None:
    for name, digest in expected["demo_weights"]["sha256"].items():
        actual = hashlib.sha256((models / name).read_bytes()).hexdigest()
        assert actual == digest, (
            f"{name} differs from the demo weights the reference ran with: "
            "regenerate tests/data/reference/models/ (see tests/data/reference/README.md)"
        )


def run_centres(case: str, root: Path, models: Path) -> dict[str, Path]:
    """Rebuild the case's exam, run crop and extract_centers.

    Returns the stage outputs the model stages read, by input name.
    """
    write_case_exam(case, root / "ingest" / "sample_data")

    run_stage("stages.crop", root / "ingest")
    outputs = {"crop": root / "ingest" / "out", "models": models}
    centres = stage_root(root, "centres", {"crop": outputs["crop"]})
    run_stage("stages.extract_centers", centres)
    outputs["extract_centers"] = centres / "out"
    return outputs


def run_heatmaps(case: str, root: Path, models: Path, backend: str) -> dict[str, Path]:
    """run_centres, then generate_heatmaps; its output is added to the returned inputs."""
    outputs = run_centres(case, root, models)
    heatmaps = stage_root(root, "heatmaps", outputs)
    run_stage("stages.generate_heatmaps", heatmaps, "--device", "cpu", "--backend", backend)
    check_backend(heatmaps / "out" / case / "heatmaps_provenance.json", backend)
    return {**outputs, "generate_heatmaps": heatmaps / "out"}


def run_classify(
    root: Path, outputs: dict[str, Path], mode: str, backend: str, *flags: str
) -> Path:
    """Run classify with the flags of `mode` and `flags`; returns the tree it ran in."""
    pfs = stage_root(root, f"classify-{mode}", outputs)
    run_stage(
        "stages.classify",
        pfs,
        "--device",
        "cpu",
        "--backend",
        backend,
        *CLASSIFY_FLAGS[mode],
        *flags,
    )
    return pfs


def check_backend(provenance_file: Path, backend: str) -> None:
    """The output says which backend made it, and which version of it."""
    provenance = json.loads(provenance_file.read_text())
    provenance = provenance.get("provenance", provenance)
    assert provenance["backend"] == backend
    assert provenance["backend_version"] == importlib.metadata.version(backend)


def check_heatmaps(exam_out: Path, expected: dict, arrays: dict[str, np.ndarray]) -> None:
    step = expected["heatmaps"]["grid_step"]
    for name, kinds in expected["heatmaps"]["images"].items():
        for kind in KINDS:
            stats = kinds[kind]
            path = exam_out / "heatmaps" / f"heatmap_{kind}" / f"{name}.hdf5"
            with h5py.File(path, "r") as h5:
                assert list(h5.keys()) == ["image"]
                dataset = h5["image"]
                assert dataset.dtype == np.float32
                assert dataset.compression == "lzf"
                # Stored transposed: (width, height) of the cropped image.
                assert dataset.shape == tuple(reversed(stats["shape"])), name
                heatmap = dataset[()].T
            key = f"{name}.{kind}"
            # Row and column means move when any patch boundary moves by one pixel.
            for sample, values in (
                ("grid", heatmap[::step, ::step]),
                ("row_means", heatmap.astype(np.float64).mean(axis=1)),
                ("col_means", heatmap.astype(np.float64).mean(axis=0)),
            ):
                np.testing.assert_allclose(
                    values, arrays[f"{key}.{sample}"], rtol=0, atol=TOLERANCE, err_msg=key
                )
            assert heatmap.min() == pytest.approx(stats["min"], abs=TOLERANCE)
            assert heatmap.max() == pytest.approx(stats["max"], abs=TOLERANCE)
            assert heatmap.astype(np.float64).mean() == pytest.approx(stats["mean"], abs=TOLERANCE)


def csv_cells_within_tolerance(value: float) -> set[str]:
    """The 4-decimal texts of the values within TOLERANCE of `value`.

    Two of them when `value` lies that close to a rounding boundary: a difference within
    tolerance may then flip the last digit.
    """
    return {f"{value - TOLERANCE:.4f}", f"{value + TOLERANCE:.4f}"}


def check_csv(text: str, reference_text: str, expected: dict[str, float]) -> None:
    header, row = text.splitlines()
    reference_header, reference_row = reference_text.splitlines()
    assert text.endswith("\n")
    assert header == reference_header == ",".join(expected)
    allowed = [csv_cells_within_tolerance(value) for value in expected.values()]
    for cells in (row.split(","), reference_row.split(",")):
        assert len(cells) == len(allowed)
        for cell, texts in zip(cells, allowed, strict=True):
            assert cell in texts, (cell, texts)


def check_predictions(exam_out: Path, expected: dict, backend: str) -> None:
    check_backend(exam_out / "predictions.json", backend)
    written = json.loads((exam_out / "predictions.json").read_text())["models"]
    assert list(written) == [model for model in MODELS if model in expected]
    for model in written:
        assert list(written[model]) == list(expected[model])
        for label, value in expected[model].items():
            assert written[model][label] == pytest.approx(value, abs=TOLERANCE), (model, label)
        csv = (exam_out / f"{model}_predictions.csv").read_text()
        check_csv(csv, expected[f"{model}_csv"], expected[model])


@pytest.fixture(scope="module", params=SMALL_RUNS, ids="-".join)
def small_case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, demo_models: Path
) -> tuple[str, str, Path, dict[str, Path]]:
    case, backend = request.param
    check_demo_weights(demo_models, load_expected(case)[0])
    root = tmp_path_factory.mktemp(f"{case}-{backend}")
    return case, backend, root, run_heatmaps(case, root, demo_models, backend)


def test_small_exam_heatmaps_match_the_reference(small_case):
    case, _, _, outputs = small_case
    expected, arrays = load_expected(case)
    check_heatmaps(outputs["generate_heatmaps"] / case, expected, arrays)


@pytest.mark.parametrize("mode", CLASSIFY_FLAGS)
def test_small_exam_predictions_match_the_reference(small_case, mode):
    case, backend, root, outputs = small_case
    expected, _ = load_expected(case)
    pfs = run_classify(root, outputs, mode, backend)
    check_predictions(pfs / "out" / case, expected["predictions"][mode], backend)


def test_full_size_exam_matches_the_reference(tmp_path, demo_models):
    """A full-size exam: thousands of patches, classifier windows placed by best_center.

    Its heatmaps alone take minutes on two cores, so the classifier runs once, without
    augmentation; the augmented windows are checked on the small and unpadded cases.
    """
    expected, arrays = load_expected(FULL_SIZE_CASE)
    check_demo_weights(demo_models, expected)
    outputs = run_heatmaps(FULL_SIZE_CASE, tmp_path, demo_models, "openvino")
    check_heatmaps(outputs["generate_heatmaps"] / FULL_SIZE_CASE, expected, arrays)
    pfs = run_classify(tmp_path, outputs, "no_augmentation", "openvino")
    predictions = expected["predictions"]["no_augmentation"]
    check_predictions(pfs / "out" / FULL_SIZE_CASE, predictions, "openvino")


def test_unpadded_windows_match_the_reference(tmp_path, demo_models):
    """The image-only classifier (no heatmaps needed) on crops larger than the windows."""
    expected, _ = load_expected(UNPADDED_CASE)
    check_demo_weights(demo_models, expected)
    outputs = run_centres(UNPADDED_CASE, tmp_path, demo_models)
    for mode in CLASSIFY_FLAGS:
        pfs = run_classify(tmp_path, outputs, mode, "openvino", "--model", "image")
        check_predictions(pfs / "out" / UNPADDED_CASE, expected["predictions"][mode], "openvino")
