"""Download the published NYU checkpoints into a folder and verify their git blob ids.

    bcd models download models/        (what `make models` runs)

Each file is fetched from the NYU repository at a pinned commit into a temporary file,
checked against the published blob id, and only then renamed into place. Files already
present and verified are kept; anything else under those names (demo weights) is
replaced once the real file has been verified.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from stages.nets.provenance import MODEL_FILES, PUBLISHED_BLOB_IDS, file_digests

# github.com/nyukat/breast_cancer_classifier; the checkpoints are unchanged since e93266f.
NYU_COMMIT = "6176ebea6950b0a953339593d2da417ab846dae0"
BASE_URL = f"https://raw.githubusercontent.com/nyukat/breast_cancer_classifier/{NYU_COMMIT}/models/"
INSTALL_HELP = """\
The published weights were not installed. Either:
  - download them on a machine with internet access from
    {base}<file name> for {files},
    copy them into {directory}/ and check them with `bcd models verify {directory}`; or
  - write seeded stand-in weights (NOT the published model, predictions are not clinical):
    `bcd models demo {directory}`"""


class DownloadError(RuntimeError):
    """A file could not be fetched, or what came back is not the published file."""


def download(url: str, destination: Path, expected_blob_id: str, timeout: float) -> str:
    """Fetch `url` to `destination` if its git blob id is the expected one; return its sha256."""
    fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError) as error:
                raise DownloadError(f"could not download {url}: {error}") from error
        blob_id, sha256 = file_digests(tmp)
        if blob_id != expected_blob_id:
            raise DownloadError(
                f"{url} gave a file with git blob id {blob_id}, not the published "
                f"{expected_blob_id}; nothing was written"
            )
        os.replace(tmp, destination)
        return sha256
    finally:
        tmp.unlink(missing_ok=True)


def download_published(directory: Path, base_url: str = BASE_URL, timeout: float = 60.0) -> int:
    """Install every published checkpoint into `directory`; `bcd models download`'s exit status."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        path = directory / name
        expected = PUBLISHED_BLOB_IDS[name]
        if path.is_file():
            blob_id, sha256 = file_digests(path)
            if blob_id == expected:
                print(f"{name}: present and verified (blob {blob_id}, sha256 {sha256})")
                continue
            print(f"{name}: present but not the published file (blob {blob_id}); replacing it")
        try:
            sha256 = download(base_url + name, path, expected, timeout)
        except DownloadError as error:
            print(f"{name}: {error}", file=sys.stderr)
            print(
                INSTALL_HELP.format(
                    base=base_url, files=", ".join(MODEL_FILES), directory=directory
                ),
                file=sys.stderr,
            )
            return 1
        print(f"{name}: downloaded and verified (blob {expected}, sha256 {sha256})")
    return 0
