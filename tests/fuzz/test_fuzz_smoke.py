"""Every fuzz harness (tests/fuzz/fuzz_*.py) survives a short real run from its seeds.

Each harness runs as its own process (atheris, coverage-guided) for a bounded number of
inputs, mutating its committed seed corpus; any escaped exception, crash or hang fails
the test with the input that caused it. The long runs are `make fuzz`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

FUZZ = REPO / "tests" / "fuzz"
HARNESSES = sorted(FUZZ.glob("fuzz_*.py"))
# The inputs fuzzing found that once failed, per boundary: replayed through its harness.
REGRESSIONS = REPO / "tests" / "data" / "fuzz-regressions"
# Inputs per harness: a few thousand keeps all of them to about a minute.
RUNS = int(os.environ.get("BCD_FUZZ_SMOKE_RUNS", "2000"))
# Fixed, so that a failure here reproduces with the same command.
SEED = 1
# Only a guard against a hang: a normal run takes seconds.
HANG_GUARD_S = 600
RSS_LIMIT_MB = 4096


def boundary(harness: Path) -> str:
    return harness.stem.removeprefix("fuzz_")


def corpus_of(harness: Path) -> Path:
    """The committed seeds of a harness: tests/fuzz/corpus/<boundary>/."""
    return FUZZ / "corpus" / boundary(harness)


def harness_env(scratch: Path) -> dict[str, str]:
    """The harness's environment; its scratch files go under `scratch` (see fuzzing.py)."""
    scratch.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(FUZZ)]),
        "TMPDIR": str(scratch),
    }


def test_every_harness_has_seeds():
    assert HARNESSES
    for harness in HARNESSES:
        corpus = corpus_of(harness)
        assert corpus.is_dir() and any(corpus.iterdir()), f"{harness.name}: no seeds in {corpus}"


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda path: path.stem)
def test_harness_survives_a_bounded_run(harness: Path, tmp_path: Path):
    new_inputs, crashes = tmp_path / "new-inputs", tmp_path / "crashes"
    new_inputs.mkdir()
    crashes.mkdir()
    command = [
        sys.executable,
        str(harness),
        f"-runs={RUNS}",
        f"-seed={SEED}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-artifact_prefix={crashes}/",
        str(new_inputs),  # libFuzzer adds what it finds to the first folder: not the seeds
        str(corpus_of(harness)),
    ]
    result = subprocess.run(
        command,
        env=harness_env(tmp_path / "scratch"),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )
    found = {path.name: path.read_bytes() for path in sorted(crashes.iterdir())}
    assert result.returncode == 0 and not found, (
        f"{' '.join(command)}\nexit {result.returncode}; inputs that failed: {found!r}\n"
        f"{result.stderr[-6000:]}"
    )


@pytest.mark.parametrize(
    "harness",
    [harness for harness in HARNESSES if (REGRESSIONS / boundary(harness)).is_dir()],
    ids=lambda path: path.stem,
)
def test_harness_replays_the_inputs_fuzzing_found(harness: Path, tmp_path: Path):
    inputs = sorted(str(path) for path in (REGRESSIONS / boundary(harness)).iterdir())
    # Given files, a harness runs each of them once.
    command = [sys.executable, str(harness), *inputs]
    result = subprocess.run(
        command, env=harness_env(tmp_path), capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr[-6000:]}"
    assert result.stderr.count("Running: ") == len(inputs), result.stderr[-6000:]
