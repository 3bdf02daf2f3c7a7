"""`bcd models download` against a real local HTTP server (the real files are not here)."""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bcd.cli", "models", "download", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on localhost: (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_file_that_is_not_the_published_one_is_not_installed(served, tmp_path):
    folder, url = served
    (folder / "sample_patch_model.p").write_bytes(b"not the weights")
    models = tmp_path / "models"
    done = run_script(str(models), "--base-url", url)
    assert done.returncode == 1
    assert "not the published 44ce52382562085dcd5becde74fff087b2f31cd4" in done.stderr
    assert "bcd models demo" in done.stderr
    assert list(models.iterdir()) == []  # no file, no temporary left behind


def test_missing_file_on_the_server_is_reported(served, tmp_path):
    _, url = served
    done = run_script(str(tmp_path / "models"), "--base-url", url)
    assert done.returncode == 1
    assert "could not download" in done.stderr and "404" in done.stderr


def test_unreachable_server_fails_clearly_and_keeps_existing_files(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    models = tmp_path / "models"
    models.mkdir()
    (models / "sample_patch_model.p").write_bytes(b"demo weights")
    done = run_script(str(models), "--base-url", f"http://127.0.0.1:{port}/", "--timeout", "5")
    assert done.returncode == 1
    assert "sample_patch_model.p: present but not the published file" in done.stdout
    assert "could not download" in done.stderr
    assert "bcd models verify" in done.stderr and "bcd models demo" in done.stderr
    assert (models / "sample_patch_model.p").read_bytes() == b"demo weights"
    assert sorted(p.name for p in models.iterdir()) == ["sample_patch_model.p"]
