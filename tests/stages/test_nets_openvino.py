"""The OpenVINO backend: which backend runs where, fp32 pinned and held, same numbers as torch.

The networks are the real ones (the patch DenseNet-121 with the seeded demo weights),
converted the way the stages convert them; the stage-level parity with the reference on
this backend is tests/stages/test_model_parity.py's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
import torch
from helpers import python_module_cmd

from bcd.models.demo_weights import write_demo_weights
from stages.nets.checkpoints import load_patch_classifier
from stages.nets.openvino_backend import OpenVinoModule, compile_for_cpu, convert
from stages.nets.patch_scoring import prepare_model
from stages.nets.provenance import PATCH_MODEL_FILE
from stages.nets.runtime import EXACT, Precision, resolve_backend
from stages.table import CLASSIFY, GENERATE_HEATMAPS

BATCH = 4
PATCH_INPUT = (BATCH, 3, 256, 256)
# The parity tests' tolerance (heatmaps and predictions against the reference).
PARITY = 1e-5


CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_a_fixed_rule_per_stage_and_device():
    assert resolve_backend("auto", CPU, GENERATE_HEATMAPS) == "openvino"
    assert resolve_backend("auto", CPU, CLASSIFY) == "torch"
    for stage in (GENERATE_HEATMAPS, CLASSIFY):
        assert resolve_backend("auto", CUDA, stage) == "torch"
        assert resolve_backend("torch", CPU, stage) == "torch"
        assert resolve_backend("openvino", CPU, stage) == "openvino"


def test_openvino_is_refused_on_cuda_and_unknown_backends_are_refused():
    with pytest.raises(ValueError, match=r"CPU only.*--backend torch"):
        resolve_backend("openvino", CUDA, CLASSIFY)
    with pytest.raises(ValueError, match="one of auto, torch, openvino"):
        resolve_backend("onnx", CPU, GENERATE_HEATMAPS)


@pytest.fixture(scope="module")
def patch_network(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, ov.Model]:
    """The patch classifier as generate_heatmaps prepares it, and its OpenVINO conversion."""
    models = tmp_path_factory.mktemp("models")
    write_demo_weights(models)
    model = prepare_model(load_patch_classifier(models / PATCH_MODEL_FILE))
    return model, convert(model, PATCH_INPUT)


@pytest.fixture(scope="module")
def patches() -> torch.Tensor:
    """Standardised-looking greyscale patches copied to 3 channels, as the stage feeds them."""
    grey = torch.from_numpy(np.random.default_rng(3).normal(size=(BATCH, 1, 256, 256)))
    return grey.float().expand(-1, 3, -1, -1).contiguous()


def softmax_of(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(x), dim=1).numpy()


def deviation(compiled: ov.CompiledModel, model: torch.nn.Module, x: torch.Tensor) -> float:
    """Largest softmax difference between the compiled network and torch's fp32 on `x`."""
    on_openvino = softmax_of(OpenVinoModule(compiled, PATCH_INPUT), x)
    return float(np.abs(on_openvino - softmax_of(model, x)).max())


def test_fp32_is_pinned_and_the_pin_holds(patch_network, patches):
    model, converted = patch_network
    compiled = compile_for_cpu(converted, EXACT, threads=2)
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert deviation(compiled, model, patches) < PARITY / 10


def test_without_the_pin_the_parity_check_would_fail(patch_network, patches):
    """OpenVINO's own default on a CPU with AVX512-BF16 or AMX is bf16: too far from exact."""
    model, converted = patch_network
    unpinned = ov.Core().compile_model(converted, "CPU", {"INFERENCE_NUM_THREADS": 2})
    if unpinned.get_property("INFERENCE_PRECISION_HINT") != ov.Type.bf16:
        pytest.skip("OpenVINO runs fp32 by default on this CPU (no AVX512-BF16 or AMX)")
    assert deviation(unpinned, model, patches) > PARITY


def test_bf16_is_compiled_only_when_asked_for(patch_network, patches):
    model, converted = patch_network
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 arithmetic (no AVX512-BF16 or AMX)")
    compiled = compile_for_cpu(converted, Precision("bf16", "bf16"), threads=2)
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    # bf16 keeps 8 mantissa bits: probabilities move by ~1e-3, not by 1e-1.
    assert PARITY < deviation(compiled, model, patches) < 2e-2


def test_same_input_same_output_and_short_batches_padded(patch_network, patches):
    _, converted = patch_network
    network = OpenVinoModule(compile_for_cpu(converted, EXACT, threads=2), PATCH_INPUT)
    with torch.inference_mode():
        full = network(patches).numpy()
        assert np.array_equal(network(patches).numpy(), full)
        # Three rows padded to the compiled four, and six rows run as four and two.
        short = network(patches[:3]).numpy()
        longer = network(torch.cat([patches, patches[:2]])).numpy()
    assert short.shape == (3, 4) and longer.shape == (6, 4)
    np.testing.assert_allclose(short, full[:3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(longer, np.concatenate([full, full[:2]]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"compiled for inputs of \(3, 256, 256\)"):
        network(torch.zeros(1, 3, 128, 128))


def test_stage_reads_the_backend_from_the_environment(tmp_path: Path):
    """$BCD_BACKEND is the default of --backend; a bad value stops the stage before any exam."""
    done = subprocess.run(
        python_module_cmd("stages.generate_heatmaps", "--pfs", str(tmp_path), "--device", "cpu"),
        env={**os.environ, "BCD_BACKEND": "onnx"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "backend must be one of auto, torch, openvino, not 'onnx'" in done.stderr
