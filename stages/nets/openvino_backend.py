"""OpenVINO as the CPU backend: a torch network converted once and run in its place.

The network is still built and loaded through our torch definitions (stages.nets); this
module converts it for one fixed input shape (torch.export, then OpenVINO's converter)
and compiles it for the CPU. Fixed shapes let the CPU plugin pick its kernels and memory
plan once. Precision is pinned, never left to the plugin: on CPUs with AVX512-BF16 or AMX
OpenVINO would otherwise run fp32 networks in bf16 (~1e-3 from exact), so the hint is set
explicitly and read back from the compiled network. A conversion is kept in a cache
folder (stages.nets.openvino_cache) so that a worker converts each network once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from torch import nn

from stages.nets import openvino_cache
from stages.nets.runtime import OPENVINO_CACHE_ENV, Precision

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


def cached_conversion(
    model: nn.Module, input_shape: tuple[int, ...], cache: Path | None, label: str
) -> ov.Model:
    """`convert(model, input_shape)`, from the `cache` folder when it holds it (None: no
    cache). A damaged entry or an unwritable folder is said on stderr under `label`; the
    network is then converted here, so the outputs are the same either way.
    """
    if cache is None:
        return convert(model, input_shape)
    key = openvino_cache.conversion_key(model, input_shape, [Path(__file__)])
    damaged = False
    try:
        stored = openvino_cache.load(cache, key)
    except ValueError as error:
        print(f"{label}: {error}: converting the network again", file=sys.stderr)
        stored, damaged = None, True
    network = f"{type(model).__name__} for {tuple(input_shape)}"
    if stored is not None:
        print(f"{label}: OpenVINO {network} from the cache ({cache / key})", file=sys.stderr)
        return stored
    start = time.perf_counter()
    converted = convert(model, input_shape)
    seconds = time.perf_counter() - start
    about = {"input_shape": list(input_shape), "module": type(model).__name__}
    try:
        entry = openvino_cache.store(cache, key, converted, about, damaged=damaged)
    except openvino_cache.CacheUnusable as error:
        print(
            f"{label}: {error}; each process converts its networks again (set "
            f"{OPENVINO_CACHE_ENV} to a writable folder, or to 'off')",
            file=sys.stderr,
        )
    else:
        print(
            f"{label}: OpenVINO network converted in {seconds:.1f} s, kept in {entry}",
            file=sys.stderr,
        )
    return converted


def on_openvino(
    model: nn.Module,
    input_shape: tuple[int, ...],
    precision: Precision,
    threads: int,
    cache: Path | None = None,
    label: str = "bcd",
) -> OpenVinoModule:
    """`model` converted for `input_shape` (or read from `cache`) and compiled for the CPU
    (seconds: once per process; from the cache, a fraction of a second)."""
    converted = cached_conversion(model, input_shape, cache, label)
    return OpenVinoModule(compile_for_cpu(converted, precision, threads), input_shape)
