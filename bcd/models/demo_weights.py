"""Seeded stand-in weights in the published files' exact layout, for tests and demos.

The real checkpoints cannot be fetched everywhere; these files let the whole pipeline
run, and let the reference code be run on the very same weights to compare numbers.
They are random: their predictions mean nothing and are marked unverified.

Values come from numpy's PCG64 generator (its streams are stable across releases), one
stream per file, drawn module by module in registration order. Spreads keep activations
in a sane range, and the output layers are shrunk so probabilities land mid-range
rather than at 0 or 1, where differences between implementations would hide.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.io.pfs import atomic_write_bytes
from stages.nets.densenet import PatchDenseNet121
from stages.nets.provenance import IMAGE_MODEL_FILE, IMAGEHEATMAPS_MODEL_FILE, PATCH_MODEL_FILE
from stages.nets.view_split import IMAGE_CHANNELS, IMAGE_HEATMAPS_CHANNELS, ViewSplitClassifier

DEFAULT_SEED = 0
OUTPUT_LAYER_SCALE = 0.02
PATCH_CLASSIFIER_SCALE = 0.5
# Stream index per file, so each file depends only on the seed and its own name.
_FILE_STREAMS = {PATCH_MODEL_FILE: 0, IMAGE_MODEL_FILE: 1, IMAGEHEATMAPS_MODEL_FILE: 2}


def _draw(rng: np.random.Generator, tensor: torch.Tensor, kind: str, spread: float) -> None:
    shape = tuple(tensor.shape)
    if kind == "normal":
        values = rng.normal(0.0, spread, shape)
    else:  # "around_one": positive scales near 1
        values = rng.uniform(1.0 - spread, 1.0 + spread, shape)
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(values.astype(np.float32)))


def fill_seeded(model: nn.Module, rng: np.random.Generator) -> None:
    """Overwrite every conv, batch-norm and linear tensor of `model` with seeded draws.

    Shared modules (the view-split trunk aliases) are visited once, so aliases keep
    holding the same tensors.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            _draw(rng, module.weight, "normal", (2.0 / fan_in) ** 0.5)
            if module.bias is not None:
                _draw(rng, module.bias, "normal", 0.1)
        elif isinstance(module, nn.BatchNorm2d):
            _draw(rng, module.weight, "around_one", 0.2)
            _draw(rng, module.bias, "normal", 0.1)
            # Every BatchNorm2d here tracks running statistics, so both buffers exist.
            assert module.running_mean is not None and module.running_var is not None
            _draw(rng, module.running_mean, "normal", 0.1)
            _draw(rng, module.running_var, "around_one", 0.3)
        elif isinstance(module, nn.Linear):
            _draw(rng, module.weight, "normal", module.in_features**-0.5)
            _draw(rng, module.bias, "normal", 0.1)


def _scale(layer: nn.Linear, factor: float) -> None:
    with torch.no_grad():
        layer.weight.mul_(factor)
        layer.bias.mul_(factor)


def demo_checkpoints(seed: int = DEFAULT_SEED) -> dict[str, object]:
    """The objects to save, by file name, in the published layouts."""
    streams = {
        name: np.random.Generator(np.random.PCG64([seed, index]))
        for name, index in _FILE_STREAMS.items()
    }
    patch = PatchDenseNet121()
    fill_seeded(patch, streams[PATCH_MODEL_FILE])
    _scale(patch.classifier, PATCH_CLASSIFIER_SCALE)
    checkpoints: dict[str, object] = {PATCH_MODEL_FILE: patch.state_dict()}
    for name, channels in (
        (IMAGE_MODEL_FILE, IMAGE_CHANNELS),
        (IMAGEHEATMAPS_MODEL_FILE, IMAGE_HEATMAPS_CHANNELS),
    ):
        classifier = ViewSplitClassifier(channels)
        fill_seeded(classifier, streams[name])
        _scale(classifier.output_layer_cc.fc_layer, OUTPUT_LAYER_SCALE)
        _scale(classifier.output_layer_mlo.fc_layer, OUTPUT_LAYER_SCALE)
        checkpoints[name] = {"model": classifier.state_dict()}
    return checkpoints


def write_demo_weights(directory: Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the three stand-in checkpoints into `directory`, each atomically.

    Same seed, same bytes: torch.save writes the same archive for the same tensors when
    it writes to memory (a file target would embed the temporary file's name).
    """
    written = []
    for name, checkpoint in demo_checkpoints(seed).items():
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = directory / name
        atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    return written
