"""When a stage batches, and the clear refusals around it (the batched runs themselves are
tested through `bcd run` in tests/bcd/test_run_batched_stages.py)."""

from __future__ import annotations

import os
import socket
import subprocess

from helpers import python_module_cmd, write_exam

from stages.batching import batching_requested


def test_batching_needs_the_spec_to_ask_and_a_worker_api():
    assert batching_requested({"BCD_DATUM_BATCHING": "1", "PPS_WORKER_GRPC_PORT": "1650"})
    # Every 2.x worker has the port, batched or not; the spec's env decides.
    assert not batching_requested({"PPS_WORKER_GRPC_PORT": "1650"})
    assert not batching_requested({"BCD_DATUM_BATCHING": "1"})
    assert not batching_requested({"BCD_DATUM_BATCHING": "0", "PPS_WORKER_GRPC_PORT": "1650"})


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def crop(pfs, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_module_cmd("stages.crop", *args),
        env={**os.environ, "PFS_ROOT": str(pfs), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unbatched_the_worker_port_alone_changes_nothing(pfs):
    write_exam(pfs / "sample_data", "exam-a")
    done = crop(pfs, PPS_WORKER_GRPC_PORT=str(closed_port()))
    assert done.returncode == 0, done.stderr
    assert (pfs / "out" / "exam-a" / "cropped_exam_list.json").is_file()


def test_batching_without_a_batching_worker_says_what_to_set(pfs):
    done = crop(pfs, BCD_DATUM_BATCHING="1", PPS_WORKER_GRPC_PORT=str(closed_port()))
    assert done.returncode == 2
    assert "NextDatum on the worker API" in done.stderr
    assert "transform.datum_batching: true (pachd >= 2.5)" in done.stderr
    assert "Traceback" not in done.stderr


def test_pfs_is_refused_under_batching(pfs):
    done = crop(pfs, "--pfs", str(pfs), BCD_DATUM_BATCHING="1", PPS_WORKER_GRPC_PORT="1650")
    assert done.returncode == 2
    assert "--pfs cannot be used under datum batching" in done.stderr
    assert not (pfs / "out").exists()
