"""OpenVINO as the CPU backend: a torch network converted once and run in its place.

The network is still built and loaded through our torch definitions (stages.nets); this
module converts it for one fixed input shape (torch.export, then OpenVINO's converter)
and compiles it for the CPU. Fixed shapes let the CPU plugin pick its kernels and memory
plan once. Precision is pinned, never left to the plugin: on CPUs with AVX512-BF16 or AMX
OpenVINO would otherwise run fp32 networks in bf16 (~1e-3 from exact), so the hint is set
explicitly and read back from the compiled network.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import torch
from torch import nn

from stages.nets.runtime import Precision

# Our precision names, in OpenVINO's INFERENCE_PRECISION_HINT values.
INFERENCE_PRECISION = {"fp32": ov.Type.f32, "bf16": ov.Type.bf16}


def convert(model: nn.Module, input_shape: tuple[int, ...]) -> ov.Model:
    """`model` (eval mode, one tensor in, one out) as an OpenVINO model for this input shape."""
    example = torch.zeros(input_shape, dtype=torch.float32)
    with torch.no_grad():
        exported = torch.export.export(model, (example,))
    return ov.convert_model(exported)


def compile_for_cpu(converted: ov.Model, precision: Precision, threads: int) -> ov.CompiledModel:
    """The converted model compiled for the CPU at `precision`, on `threads` threads.

    RuntimeError when the compiled network does not run at the precision asked for.
    """
    expected = INFERENCE_PRECISION[precision.used]
    compiled = ov.Core().compile_model(
        converted,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": expected,
            "INFERENCE_NUM_THREADS": threads,
            # One stream, one request at a time: a datum's batches run in order.
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    used = compiled.get_property("INFERENCE_PRECISION_HINT")
    if used != expected:
        raise RuntimeError(
            f"OpenVINO compiled the network for {used}, not the {expected} asked for"
        )
    return compiled


class OpenVinoModule(nn.Module):
    """Runs a compiled network in place of the torch module it came from.

    Takes and returns torch tensors on the CPU, like the module it replaces. A batch
    smaller than the compiled one is zero-padded to it (rows are computed independently:
    the padding rows are dropped, the others' results are theirs); a larger one runs in
    chunks.
    """

    def __init__(self, compiled: ov.CompiledModel, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = input_shape
        self._request = compiled.create_infer_request()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ValueError(
                f"this network was compiled for inputs of {self.input_shape[1:]}, "
                f"not {tuple(x.shape[1:])}"
            )
        inputs = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        fixed = self.input_shape[0]
        outputs = []
        for start in range(0, len(inputs), fixed):
            chunk = inputs[start : start + fixed]
            rows = len(chunk)
            if rows < fixed:
                chunk = np.concatenate(
                    [chunk, np.zeros((fixed - rows, *chunk.shape[1:]), np.float32)]
                )
            result = self._request.infer({0: chunk})[0]
            outputs.append(np.array(result[:rows]))
        return torch.from_numpy(np.concatenate(outputs))


def on_openvino(
    model: nn.Module, input_shape: tuple[int, ...], precision: Precision, threads: int
) -> OpenVinoModule:
    """`model` converted for `input_shape` and compiled for the CPU (seconds: once per process)."""
    compiled = compile_for_cpu(convert(model, input_shape), precision, threads)
    return OpenVinoModule(compiled, input_shape)
