"""Precision: exact fp32 by default, bf16 on request where supported, recorded in provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import run_stage_on, write_exam

from bcd.models.demo_weights import write_demo_weights
from stages.nets import runtime
from stages.nets.runtime import EXACT, autocast, bf16_supported, resolve_precision

CPU = torch.device("cpu")
STAGE_ENV = {**os.environ, "BCD_TORCH_THREADS": "2", "PYTHONWARNINGS": "ignore"}


def test_fp32_is_exact_and_says_so():
    precision = resolve_precision("fp32", CPU)
    assert precision == EXACT
    assert precision.provenance() == {"precision": "fp32"}


def test_bf16_where_supported():
    precision = resolve_precision("bf16", CPU)
    if bf16_supported(CPU):
        assert precision.used == "bf16"
        assert precision.provenance() == {"precision": "bf16"}
    else:
        assert precision.used == "fp32"
        assert "no native bf16" in precision.provenance()["precision_note"]


def test_bf16_falls_back_to_exact_with_a_note(monkeypatch):
    # Stands in for a CPU without AVX512-BF16/AMX, which this machine may not be.
    monkeypatch.setattr(runtime, "bf16_supported", lambda device: False)
    precision = resolve_precision("bf16", CPU)
    assert (precision.requested, precision.used) == ("bf16", "fp32")
    assert precision.provenance() == {
        "precision": "fp32",
        "precision_note": "bf16 was asked for but this CPU has no native bf16 support: "
        "ran exact fp32 instead",
    }


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="one of fp32, bf16"):
        resolve_precision("fp16", CPU)


def test_autocast_runs_bf16_only_when_asked():
    layer = torch.nn.Linear(4, 4)
    x = torch.ones(2, 4)
    with torch.inference_mode(), autocast(EXACT, CPU):
        assert layer(x).dtype == torch.float32
    if bf16_supported(CPU):
        with torch.inference_mode(), autocast(resolve_precision("bf16", CPU), CPU):
            assert layer(x).dtype == torch.bfloat16


def test_exact_fp32_turns_tf32_off():
    runtime.use_exact_fp32()
    assert not torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cudnn.allow_tf32


def _run(module: str, pfs: Path, *args: str) -> Path:
    run_stage_on(module, pfs, *args, env=STAGE_ENV, timeout=900)
    out = pfs / "out"
    target = pfs / module.removeprefix("stages.")
    out.rename(target)
    return target


def _heatmaps(exam_out: Path) -> dict[str, np.ndarray]:
    found = {}
    for path in sorted(exam_out.glob("heatmaps/heatmap_*/*.hdf5")):
        with h5py.File(path, "r") as h5:
            found[f"{path.parent.name}/{path.name}"] = np.asarray(h5["image"])
    return found


@pytest.fixture(scope="module")
def exact_and_fast(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small exam through crop, centres and heatmaps, then heatmaps + classify in bf16."""
    root = tmp_path_factory.mktemp("precision")
    exact = root / "exact"
    write_exam(exact / "sample_data", "exam-1", size=(700, 560))
    write_demo_weights(_made(exact / "models"))
    _run("stages.crop", exact)
    _run("stages.extract_centers", exact)
    _run("stages.generate_heatmaps", exact, "--device", "cpu")
    fast = root / "fast"
    fast.mkdir()
    for name in ("crop", "extract_centers", "models"):
        (fast / name).symlink_to(exact / name)
    _run("stages.generate_heatmaps", fast, "--device", "cpu", "--precision", "bf16")
    flags = ("--model", "imageheatmaps", "--no-augmentation", "--device", "cpu")
    _run("stages.classify", fast, *flags, "--precision", "bf16")
    return exact, fast


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def test_outputs_record_the_precision_really_used(exact_and_fast):
    exact, fast = exact_and_fast
    expected = resolve_precision("bf16", CPU).provenance()
    exact_provenance = json.loads(
        (exact / "generate_heatmaps" / "exam-1" / "heatmaps_provenance.json").read_text()
    )
    assert exact_provenance["precision"] == "fp32"
    # On the CPU, auto runs OpenVINO, in bf16 too (its bf16 is the faster one there).
    assert exact_provenance["backend"] == "openvino"
    heatmaps_provenance = json.loads(
        (fast / "generate_heatmaps" / "exam-1" / "heatmaps_provenance.json").read_text()
    )
    assert {k: heatmaps_provenance.get(k) for k in expected} == expected
    predictions = json.loads((fast / "classify" / "exam-1" / "predictions.json").read_text())
    assert {k: predictions["provenance"].get(k) for k in expected} == expected
    assert predictions["provenance"]["heatmaps_precision"] == expected["precision"]


def test_bf16_heatmaps_stay_close_to_exact(exact_and_fast):
    exact, fast = exact_and_fast
    exact_maps = _heatmaps(exact / "generate_heatmaps" / "exam-1")
    fast_maps = _heatmaps(fast / "generate_heatmaps" / "exam-1")
    assert exact_maps.keys() == fast_maps.keys() and len(exact_maps) == 8
    largest = max(np.abs(exact_maps[k] - fast_maps[k]).max() for k in exact_maps)
    if resolve_precision("bf16", CPU).used == "bf16":
        # bf16 keeps 8 mantissa bits: probabilities move by ~1e-3, not by 1e-1.
        assert 0 < largest < 2e-2
    else:
        assert largest == 0
