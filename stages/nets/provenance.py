"""Which weights are these? File names, published git blob ids, hashing.

A checkpoint is "verified" when its git blob id is that of one of the files published in
the NYU repository's models/ folder; anything else (demo weights, retrained models) is
unverified and every result made with it must say so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

PATCH_MODEL_FILE = "sample_patch_model.p"
IMAGE_MODEL_FILE = "sample_image_model.p"
IMAGEHEATMAPS_MODEL_FILE = "sample_imageheatmaps_model.p"
MODEL_FILES: tuple[str, ...] = (PATCH_MODEL_FILE, IMAGE_MODEL_FILE, IMAGEHEATMAPS_MODEL_FILE)

# git blob ids of github.com/nyukat/breast_cancer_classifier models/*.p (commit e93266f).
PUBLISHED_BLOB_IDS: dict[str, str] = {
    PATCH_MODEL_FILE: "44ce52382562085dcd5becde74fff087b2f31cd4",
    IMAGE_MODEL_FILE: "286ec862ac532d27d3d63ba77ed3a46b9705f53c",
    IMAGEHEATMAPS_MODEL_FILE: "312ea110370017eaf9b2ddeb7571d2f99bcfd4d1",
}
UNVERIFIED_WARNING = "UNVERIFIED WEIGHTS — not the published model; predictions are not clinical"

_CHUNK = 1 << 20


def file_digests(path: Path) -> tuple[str, str]:
    """(git blob id, sha256) of a file, read once in chunks.

    The blob id is sha1 of b"blob <size>\\0" + content, what `git hash-object` prints.
    """
    blob = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    sha256 = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            blob.update(chunk)
            sha256.update(chunk)
    return blob.hexdigest(), sha256.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_published(blob_id: str) -> bool:
    """Whether a blob id is one of the published NYU checkpoints."""
    return blob_id in PUBLISHED_BLOB_IDS.values()


def file_provenance(path: Path) -> dict[str, Any]:
    """{"file", "blob_id", "sha256", "verified"} for one checkpoint file."""
    blob_id, sha256 = file_digests(path)
    return {
        "file": path.name,
        "blob_id": blob_id,
        "sha256": sha256,
        "verified": is_published(blob_id),
    }
