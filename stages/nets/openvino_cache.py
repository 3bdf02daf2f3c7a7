"""A folder of converted OpenVINO networks, so that a worker converts each network once.

Converting a network (torch.export, then OpenVINO's converter) takes ~10 s for the patch
DenseNet on 2 cores, a tenth of generate_heatmaps on a full-size exam. A Pachyderm worker
runs each of its datums in the same container, and `bcd run` on the same machine, so the
converted network is kept (OpenVINO IR, fp32 weights as they are) under a key made of
everything the conversion reads: the module's structure, its weights with their layout,
the source files of its classes and of the converter, the input shape, and the torch and
OpenVINO versions. An entry is used only when its files match the sha256 its manifest
records; anything else is converted again. Entries are written to a temporary folder and
renamed into place: a reader never sees half an entry, and concurrent workers may both
write one.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import openvino as ov
import torch
from torch import nn

from stages.nets.provenance import file_sha256

MANIFEST = "manifest.json"
XML, BIN = "model.xml", "model.bin"
# Least recently used entries beyond this are removed (an entry is ~30 MB).
MAX_ENTRIES = 16


class CacheUnusable(OSError):
    """The cache folder cannot be written (the network is converted in every process)."""


def conversion_key(model: nn.Module, input_shape: tuple[int, ...], sources: Iterable[Path]) -> str:
    """sha256 of everything a conversion of `model` for `input_shape` depends on.

    `sources` are the converter's own source files; the sources of every module class in
    `model` are added here.
    """
    digest = hashlib.sha256()

    def add(part: bytes) -> None:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)

    for text in (torch.__version__, ov.get_version(), repr(input_shape), repr(model)):
        add(text.encode())
    classes = {inspect.getsourcefile(type(module)) for module in model.modules()}
    for source in sorted({*(str(path) for path in sources), *filter(None, classes)}):
        add(Path(source).read_bytes())
    for name, tensor in model.state_dict().items():
        add(f"{name} {tensor.dtype} {tuple(tensor.shape)} {tensor.stride()}".encode())
        add(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load(folder: Path, key: str) -> ov.Model | None:
    """The converted network stored under `key`, or None when there is none.

    ValueError when the entry is there but its files do not match its manifest (the caller
    converts again and replaces it).
    """
    entry = folder / key
    manifest_file = entry / MANIFEST
    if not manifest_file.is_file():
        return None
    try:
        manifest = json.loads(manifest_file.read_text())
        matches = manifest.get("key") == key and all(
            file_sha256(entry / name) == manifest["sha256"][name] for name in (XML, BIN)
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{entry}: unreadable cache entry ({error})") from error
    if not matches:
        raise ValueError(f"{entry}: its files do not match its manifest")
    try:
        model = ov.Core().read_model(entry / XML, entry / BIN)
    except RuntimeError as error:
        raise ValueError(f"{entry}: OpenVINO cannot read it ({error})") from error
    with contextlib.suppress(OSError):  # a read-only cache is still a cache
        os.utime(manifest_file)  # most recently used
    return model


def store(
    folder: Path, key: str, model: ov.Model, about: Mapping[str, object], *, damaged: bool = False
) -> Path:
    """Keep `model` under `key`, replacing the entry there if `damaged`; the entry's folder.

    An entry another worker completed meanwhile is kept. CacheUnusable when the folder
    cannot be written, or fills up (nothing of the entry is left then).
    """
    entry = folder / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=folder))
    except OSError as error:
        raise CacheUnusable(f"{folder}: cannot write the OpenVINO cache ({error})") from error
    try:
        # compress_to_fp16 would halve the weights' precision: the cache must be exact.
        ov.save_model(model, staging / XML, compress_to_fp16=False)
        sha256 = {name: file_sha256(staging / name) for name in (XML, BIN)}
        (staging / MANIFEST).write_text(
            json.dumps({"key": key, "sha256": sha256, **about}, indent=2) + "\n"
        )
        if damaged:
            shutil.rmtree(entry, ignore_errors=True)
        try:
            staging.rename(entry)
        except OSError:
            if not (entry / MANIFEST).is_file():  # not another worker's complete entry
                raise
    except OSError as error:
        raise CacheUnusable(f"{folder}: cannot write the OpenVINO cache ({error})") from error
    except RuntimeError as error:  # OpenVINO's writer, when a write fails (a full disk, a quota)
        raise CacheUnusable(
            f"{folder}: cannot write the OpenVINO cache (saving the network failed: {error}; "
            "is its disk full?)"
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _evict(folder)
    return entry


def _evict(folder: Path) -> None:
    """Remove the least recently used entries beyond MAX_ENTRIES (another worker's
    removals meanwhile are fine)."""
    used: dict[Path, float] = {}
    for path in folder.iterdir():
        if path.name.startswith("."):  # another worker's entry being written
            continue
        with contextlib.suppress(OSError):
            used[path] = (path / MANIFEST).stat().st_mtime
    for stale in sorted(used, key=used.__getitem__, reverse=True)[MAX_ENTRIES:]:
        shutil.rmtree(stale, ignore_errors=True)
