"""Crashes, full disks, read-only outputs and concurrent runs leave nothing half-written."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from runner_sandbox import (
    PROJECT_ROOT,
    command,
    job,
    pfs,
    pipeline,
    processes_under,
    sh,
    wait_for,
)

from bcd.runner.outputs import FAULT_ENV

# Each exam datum publishes a new folder and a top-level file: two renames.
TWO_FILES = (
    'n=$(basename "$sample_data"); mkdir "$PFS_ROOT/out/$n"; echo "$n" > "$PFS_ROOT/out/$n/1"; '
    'echo "$n" > "$PFS_ROOT/out/$n.extra"'
)


def test_a_second_run_on_the_same_output_refuses_at_once(sandbox):
    sandbox.repo("sample_data", {"e1/x": ""})
    sandbox.specs(pipeline("first", pfs("sample_data", "/*"), ["true"]))
    lock_path = sandbox.out / ".bcd" / "lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on test-host: held by the test\n")
        held.flush()
        refused = sandbox.cli()
    assert refused.returncode == 2
    assert "another bcd run" in refused.stderr and "held by the test" in refused.stderr
    assert not (sandbox.out / "first").exists()
    # The lock file stays behind, but without a holder it blocks nobody.
    assert sandbox.cli().returncode == 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for leftovers")
def test_sigkill_mid_datum_leaves_no_partial_output_and_the_next_run_resumes(sandbox, tmp_path):
    sandbox.repo("sample_data", {"a/x": "", "b/x": "", "c/x": ""})
    gate, started = tmp_path / "gate", tmp_path / "started"
    script = (
        TWO_FILES + f"; if [ $n = c ] && [ ! -e {gate} ]; then touch {started}; sleep 120; fi; "
        'echo done > "$PFS_ROOT/out/$n/2"'
    )
    sandbox.specs(
        pipeline("first", pfs("sample_data", "/*"), sh(script)),
        pipeline("second", pfs("first", "/"), sh('ls -R "$first" > "$PFS_ROOT/out/listing"')),
    )
    runner = subprocess.Popen(
        sandbox.cli_args(),
        cwd=PROJECT_ROOT,
        env={**os.environ, "TQDM_DISABLE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(started.exists, "datum c to start")
        wait_for((sandbox.out / "first/b/2").exists, "datum b to be published")
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    # The datum's command (sh) dies with the runner; only its orphaned `sleep` lingers.
    wait_for(
        lambda: "sh" not in {command(pid) for pid in processes_under(sandbox.out)},
        "the datum command to die with the runner",
    )

    assert sandbox.files("first") == {
        "a/1": "a\n",
        "a/2": "done\n",
        "a.extra": "a\n",
        "b/1": "b\n",
        "b/2": "done\n",
        "b.extra": "b\n",
    }
    assert not (sandbox.out / "second").exists()

    gate.touch()
    summary_path = tmp_path / "summary.json"
    resumed = sandbox.cli("--summary-json", str(summary_path))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    report = {
        entry["pipeline"]: entry for entry in json.loads(summary_path.read_text())["pipelines"]
    }
    assert (report["first"]["processed"], report["first"]["skipped"]) == (1, 2)
    assert sandbox.files("first")["c/2"] == "done\n"
    # The killed datum's `sleep` was swept up by the next run.
    assert processes_under(sandbox.out) == []


def test_sigkill_while_publishing_is_finished_by_the_next_run(sandbox, tmp_path):
    sandbox.repo("sample_data", {"e/x": ""})
    script = 'for d in x y; do mkdir "$PFS_ROOT/out/$d"; echo $d > "$PFS_ROOT/out/$d/f"; done'
    sandbox.specs(pipeline("first", pfs("sample_data", "/"), sh(script)))
    killed = sandbox.cli(env={FAULT_ENV: "SIGKILL:1"})
    assert killed.returncode == -signal.SIGKILL
    assert sandbox.files("first") == {"x/f": "x\n"}  # killed between the two renames

    summary_path = tmp_path / "summary.json"
    assert sandbox.cli("--summary-json", str(summary_path)).returncode == 0
    assert sandbox.files("first") == {"x/f": "x\n", "y/f": "y\n"}
    (first,) = json.loads(summary_path.read_text())["pipelines"]
    assert (first["processed"], first["skipped"]) == (0, 1)  # finished, not redone


@pytest.mark.parametrize(
    ("fault", "message"), [("ENOSPC", "No space left on device"), ("EROFS", "Read-only")]
)
def test_a_full_or_read_only_disk_stops_the_run_cleanly(sandbox, monkeypatch, fault, message):
    sandbox.repo("sample_data", {"a/x": "", "b/x": "", "c/x": ""})
    sandbox.specs(
        pipeline("first", pfs("sample_data", "/*"), sh(TWO_FILES)),
        pipeline("second", pfs("first", "/"), ["true"]),
    )
    monkeypatch.setenv(FAULT_ENV, f"{fault}:3")  # in the middle of publishing b
    stopped = sandbox.run()
    assert not stopped.ok
    assert message in stopped.error
    assert job(stopped, "first").status == "failed"
    assert job(stopped, "second").status == "not run"
    assert sandbox.files("first") == {"a.extra": "a\n", "a/1": "a\n"}  # b moved back out

    monkeypatch.delenv(FAULT_ENV)
    resumed = sandbox.run()
    assert resumed.ok
    assert (job(resumed, "first").processed, job(resumed, "first").skipped) == (2, 1)
    assert sorted(sandbox.files("first")) == ["a.extra", "a/1", "b.extra", "b/1", "c.extra", "c/1"]


def test_cli_reports_a_stopped_run(sandbox):
    sandbox.repo("sample_data", {"a/x": ""})
    sandbox.specs(pipeline("first", pfs("sample_data", "/*"), sh(TWO_FILES)))
    result = sandbox.cli(env={FAULT_ENV: "ENOSPC"})
    assert result.returncode == 1
    assert "No space left on device" in result.stdout
    assert sandbox.files("first") == {}
