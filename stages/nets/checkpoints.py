"""Loading checkpoints safely and checking that they fit the model before using them.

Files are read with `torch.load(..., weights_only=True)`: only tensors and plain
containers are rebuilt, so a pickle that would run code is refused, not executed. A file is
read into memory first (bounded in size), so that what torch raises on it is about its
content: a CheckpointError naming the file, while a fault reading the disk, or memory really
running out, propagates as itself. Every tensor must be plain data the model can take (on the
CPU, strided, not quantized, nested or without data), with the model's shapes and kind of
numbers. The layouts are the published ones: the patch model is a bare state dict, the
classifiers are {"model": state_dict}.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from stages.core.errors import brief, shown
from stages.nets.provenance import (
    IMAGE_MODEL_FILE,
    IMAGEHEATMAPS_MODEL_FILE,
    MODEL_FILES,
    PATCH_MODEL_FILE,
)
from stages.nets.view_split import (
    IMAGE_CHANNELS,
    IMAGE_HEATMAPS_CHANNELS,
    TRUNK_ALIASES,
    ViewSplitClassifier,
)

if TYPE_CHECKING:
    from stages.nets.densenet import PatchDenseNet121

ModelT = TypeVar("ModelT", bound=nn.Module)
_SHOWN_KEYS = 5
_SHOWN_KEY_CHARACTERS = 80
# The published checkpoints are under 100 MB; this is far above any model here.
MAX_CHECKPOINT_BYTES = 1 << 30
# Buffers some torch versions do not save; eval-mode inference never reads them.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


class CheckpointError(ValueError):
    """A weights file that cannot be used: unreadable, unsafe, or not for this model."""


def read_checkpoint(path: Path) -> Any:
    """The object stored in a torch checkpoint, rebuilt with weights_only loading."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (see models/README.md for the weights)")
    with open(path, "rb") as handle:
        data = handle.read(MAX_CHECKPOINT_BYTES + 1)
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path}: larger than {MAX_CHECKPOINT_BYTES:,} bytes, far more than these models' "
            "weights (see models/README.md)"
        )
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except MemoryError:
        raise  # memory running out: a fault, never the file's content
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: not made of tensors and plain containers only (a pickle that "
            "could run code, or a damaged file); nothing in it was executed "
            f"({brief(_last_detail(str(error)))})"
        ) from error
    except Exception as error:
        # Whatever torch raises parsing bytes in memory (each kind of damage raises its own
        # type) is about the file; the read above was the only disk access.
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({brief(error)})"
        ) from error


def as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """`obj` as a state dict (str -> tensor); CheckpointError naming `path` otherwise."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    not_named = [shown(key) for key in obj if not isinstance(key, str)]
    if not_named:
        raise CheckpointError(
            f"{path}: not a state dict; keys that are not names: {_first(not_named)}"
        )
    not_tensors = [key for key, value in obj.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{path}: not a plain state dict of tensors; entries that are not tensors: "
            f"{_first(not_tensors)}"
        )
    unusable = [f"{key} ({problem})" for key, value in obj.items() if (problem := _unusable(value))]
    if unusable:
        raise CheckpointError(f"{path}: tensors a model cannot take: {_first(unusable)}")
    return dict(obj)


def _unusable(tensor: torch.Tensor) -> str | None:
    """Why a loaded tensor cannot be model weights, or None."""
    if tensor.is_meta:
        return "no data (meta tensor)"
    if tensor.device.type != "cpu":
        return f"on {tensor.device}"
    if tensor.is_nested or tensor.is_quantized or tensor.layout != torch.strided:
        return "not a plain dense tensor"
    if tensor.is_complex() or tensor.dtype == torch.bool:
        return f"{tensor.dtype} values"
    return None


def read_patch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The bare state dict of a patch-classifier file."""
    return as_state_dict(read_checkpoint(path), path)


def read_classifier_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict under "model" in a view-split classifier file (other entries ignored)."""
    obj = read_checkpoint(path)
    if not isinstance(obj, Mapping) or "model" not in obj:
        raise CheckpointError(
            f'{path}: a classifier checkpoint must be {{"model": state_dict}}; '
            f"found {_describe(obj)}"
        )
    return as_state_dict(obj["model"], path)


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise CheckpointError naming the first missing, unexpected and misshapen keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in state_dict if k not in expected]
    misshapen = [
        f"{k} (file {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)})"
        for k in state_dict
        if k in expected and state_dict[k].shape != expected[k].shape
    ]
    # Weights may be stored in another precision, but not as integers (or the converse).
    mistyped = [
        f"{k} (file {state_dict[k].dtype}, model {expected[k].dtype})"
        for k in state_dict
        if k in expected and state_dict[k].is_floating_point() != expected[k].is_floating_point()
    ]
    problems = [
        f"{len(keys)} {what}: {_first(keys)}"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", misshapen),
            ("kinds of numbers that differ", mistyped),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{path}: does not fit {type(model).__name__}: " + "; ".join(problems)
        )


def load_patch_classifier(
    path: Path, device: torch.device | str = "cpu", *, swap_axes: bool = False
) -> PatchDenseNet121:
    """The patch classifier with the weights in `path`, in eval mode on `device`."""
    # Imported here: the DenseNet brings torchvision (~0.9 s to import), which classify,
    # loading only the view-split classifiers, never needs.
    from stages.nets.densenet import PatchDenseNet121

    model = PatchDenseNet121(swap_axes=swap_axes)
    _load_into(model, read_patch_state_dict(path), path)
    return _ready(model, device)


def load_view_split_classifier(
    path: Path, input_channels: int, device: torch.device | str = "cpu"
) -> ViewSplitClassifier:
    """The view-split classifier (1 channel: image-only, 3: image+heatmaps) from `path`."""
    model = ViewSplitClassifier(input_channels)
    state_dict = read_classifier_state_dict(path)
    first_conv = state_dict.get("four_view_resnet.cc.first_conv.weight")
    if first_conv is not None and first_conv.ndim == 4 and first_conv.shape[1] != input_channels:
        raise CheckpointError(
            f"{path}: made for {first_conv.shape[1]}-channel input, not the {input_channels} "
            "asked for (1 = image-only, 3 = image+heatmaps)"
        )
    _load_into(model, state_dict, path)
    _warn_if_aliases_differ(state_dict, path)
    return _ready(model, device)


def load_model_file(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    """The model a file of the published names (models/sample_*_model.p) is for."""
    if path.name == PATCH_MODEL_FILE:
        return load_patch_classifier(path, device)
    channels = {IMAGE_MODEL_FILE: IMAGE_CHANNELS, IMAGEHEATMAPS_MODEL_FILE: IMAGE_HEATMAPS_CHANNELS}
    if path.name not in channels:
        raise CheckpointError(f"{path}: not one of the model file names {MODEL_FILES}")
    return load_view_split_classifier(path, channels[path.name], device)


def _load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    check_fits(model, state_dict, path)
    complete = {**model.state_dict(), **state_dict}
    model.load_state_dict(complete)


def _ready(model: ModelT, device: torch.device | str) -> ModelT:
    return model.to(device).eval().requires_grad_(False)


def _warn_if_aliases_differ(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Warn when a side alias holds other tensors than its trunk (a careless stand-in).

    The load then keeps the copy registered last (r_cc, r_mlo), as the NYU code does.
    """
    for alias, trunk in TRUNK_ALIASES:
        trunk_prefix, alias_prefix = f"four_view_resnet.{trunk}.", f"four_view_resnet.{alias}."
        names = [key[len(trunk_prefix) :] for key in state_dict if key.startswith(trunk_prefix)]
        differing = [
            name
            for name in names
            if alias_prefix + name in state_dict
            and not torch.equal(state_dict[trunk_prefix + name], state_dict[alias_prefix + name])
        ]
        if differing:
            warnings.warn(
                f"{path}: four_view_resnet.{alias} differs from four_view_resnet.{trunk} "
                f"({_first(differing)}); the copies registered last (r_cc, r_mlo) are used",
                stacklevel=3,
            )


def _last_detail(message: str) -> str:
    """The specific line of torch's weights-only refusal (what it met), without the advice."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return next((line for line in reversed(lines) if not line.startswith("Check the ")), "")


def _first(items: list[str]) -> str:
    """The first few items (each cut to a line: keys come from the file) and how many more."""
    cut = [
        item if len(item) <= _SHOWN_KEY_CHARACTERS else item[:_SHOWN_KEY_CHARACTERS] + "..."
        for item in items[:_SHOWN_KEYS]
    ]
    more = f", ... ({len(items) - _SHOWN_KEYS} more)" if len(items) > _SHOWN_KEYS else ""
    return ", ".join(cut) + more


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return "a dict with keys " + _first([shown(key) for key in obj])
    return f"a {type(obj).__name__}"
