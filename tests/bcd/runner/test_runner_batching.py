"""Datum batching as Pachyderm's worker plays it (doc section 5a), with user code that
knows only pachyderm_sdk: real processes, the runner's real gRPC server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runner_sandbox import (
    PROJECT_ROOT,
    Sandbox,
    command,
    hand_datum_id,
    job,
    pfs,
    pipeline,
    processes_under,
    wait_for,
)

from bcd.runner.batch import datum_sets
from bcd.runner.datums import Datum, DatumInput
from bcd.runner.spec import DatumSetSpec

# Each exam's `action` file says what the code does with it: "ok", or "error", "crash",
# "exit", "hang" or "gate", optionally only on attempt N ("error 1").
WORKER = r"""
import json, os, signal, sys, time
from pathlib import Path
from pachyderm_sdk import Client

root = Path(os.environ["PFS_ROOT"])
marks = Path(os.environ["MARKS"])
start = {
    "pid": os.getpid(), "root": sorted(os.listdir(root)), "env": dict(os.environ),
    "stdin": sys.stdin.read(),
}
worker = Client().worker
error = ""
while True:
    reply = worker.next_datum(error=error)
    error = ""
    env = dict(item.split("=", 1) for item in reply.env)
    exam = os.path.basename(env["sample_data"])
    attempt = len(list(marks.glob(exam + ".attempt*"))) + 1
    (marks / f"{exam}.attempt{attempt}").touch()
    (root / "out" / exam).mkdir()
    report = {
        "start": start, "attempt": attempt, "env": env, "reply": list(reply.env),
        "pfs": sorted(os.listdir(root)), "inputs": sorted(os.listdir(root / "sample_data")),
        "dotenv": (root / ".env").read_text(),
    }
    (root / "out" / exam / "report.json").write_text(json.dumps(report))
    what, *when = (root / "sample_data" / exam / "action").read_text().split()
    if when and int(when[0]) != attempt:
        continue
    if what == "error":
        error = f"bad exam {exam}"
    elif what == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif what == "exit":
        sys.exit(0)
    elif what == "hang":
        time.sleep(120)
    elif what == "gate":
        (marks / f"{exam}.waiting").touch()
        for _ in range(2400):
            if (marks / "open").exists():
                break
            time.sleep(0.05)
"""

# The documented pattern: set up once, then a function run once per datum.
BATCH_ALL_DATUMS = r"""
import os
from pathlib import Path
from dotenv import load_dotenv
from pachyderm_sdk import batch_all_datums

root = Path(os.environ["PFS_ROOT"])
marks = Path(os.environ["MARKS"])

@batch_all_datums
def each_datum():
    # batch_datum() reloads /pfs/.env; the runner's root is $PFS_ROOT.
    load_dotenv(root / ".env", override=True)
    exam = os.path.basename(os.environ["sample_data"])
    first = not (marks / exam).exists()
    (marks / exam).touch()
    if exam == "b" and first:
        raise ValueError("b fails once")
    text = (Path(os.environ["sample_data"]) / "action").read_text()
    (root / "out" / f"{exam}.txt").write_text(f"{os.getpid()} {text}")

each_datum()
"""


def exams(sandbox: Sandbox, actions: dict[str, str]) -> None:
    sandbox.repo("sample_data", {f"{exam}/action": action for exam, action in actions.items()})


def batched(marks: Path, script: str = WORKER, **fields: Any) -> dict[str, Any]:
    marks.mkdir(exist_ok=True)
    return pipeline(
        "p",
        pfs("sample_data", "/*"),
        ["python3", "-c", script],
        transform_datum_batching=True,
        transform_env={"MARKS": str(marks)},
        **fields,
    )


def reports(sandbox: Sandbox) -> dict[str, Any]:
    return {
        path.split("/")[0]: json.loads(text)
        for path, text in sandbox.files("p").items()
        if path.endswith("/report.json")
    }


def test_one_process_serves_a_set_and_each_datum_sees_only_its_own_inputs(sandbox, tmp_path):
    exams(sandbox, {exam: "ok" for exam in "abcd"})
    spec = batched(tmp_path / "marks", datum_set_spec={"number": 10}, transform_stdin=["hi"])
    sandbox.specs(spec)
    summary = sandbox.run()
    assert summary.ok, summary.format_text()
    seen = reports(sandbox)
    assert sorted(seen) == ["a", "b", "c", "d"]
    (start,) = {json.dumps(report["start"]) for report in seen.values()}
    start = json.loads(start)
    root = start["env"]["PFS_ROOT"]
    # Started once with the job's environment, before any datum was laid out.
    assert start["root"] == []
    assert start["stdin"] == "hi\n"
    assert "PACH_DATUM_ID" not in start["env"] and "sample_data" not in start["env"]
    assert start["env"]["PACH_JOB_ID"] == summary.run_id
    assert start["env"]["PPS_WORKER_GRPC_PORT"].isdigit()
    for exam, report in seen.items():
        env = report["env"]
        assert report["pfs"] == [".env", "out", "sample_data"]
        assert report["inputs"] == [exam]
        assert env["PFS_ROOT"] == root  # one root for the worker's lifetime
        assert env["sample_data"] == f"{root}/sample_data/{exam}"
        assert env["PACH_DATUM_ID"] == hand_datum_id(
            ("sample_data", "sample_data", "master", f"/{exam}/")
        )
        # .env holds the environment the reply carried, one KEY=VALUE a line.
        assert report["dotenv"] == "".join(f"{item}\n" for item in report["reply"])
    # Killed once the set was done: nothing is left running.
    assert processes_under(sandbox.out) == []


def test_sets_are_as_big_as_pachyderm_makes_them(sandbox, tmp_path):
    exams(sandbox, {f"e{index}": "ok" for index in range(8)})
    sandbox.specs(batched(tmp_path / "marks"))
    assert sandbox.run().ok
    pids = [report["start"]["pid"] for report in reports(sandbox).values()]
    # 8 datums / (1 worker x 4 sets per worker): four processes of two datums each.
    assert sorted(pids.count(pid) for pid in set(pids)) == [2, 2, 2, 2]


def datums_of_size(tmp_path: Path, sizes: list[int]) -> list[Datum]:
    datums = []
    for index, size in enumerate(sizes):
        source = tmp_path / f"f{index}"
        source.write_bytes(b"x" * size)
        item = DatumInput("in", "in", "master", f"/f{index}", source, b"")
        datums.append(Datum((item,)))
    return datums


@pytest.mark.parametrize(
    ("count", "spec", "workers", "sizes"),
    [
        (8, DatumSetSpec(), 1, [2, 2, 2, 2]),
        (8, DatumSetSpec(), 2, [1] * 8),
        (9, DatumSetSpec(), 2, [1] * 9),  # 9 // 8 = 1
        (20, DatumSetSpec(), 2, [2] * 10),
        (3, DatumSetSpec(), 4, [1, 1, 1]),  # at least 1
        (7, DatumSetSpec(number=3), 5, [3, 3, 1]),
        (8, DatumSetSpec(per_worker=1), 2, [4, 4]),
    ],
)
def test_datum_set_sizes(tmp_path, count, spec, workers, sizes):
    sets = datum_sets(datums_of_size(tmp_path, [1] * count), spec, workers)
    assert [len(each) for each in sets] == sizes


def test_datum_sets_by_size_close_once_they_hold_size_bytes(tmp_path):
    datums = datums_of_size(tmp_path, [40, 70, 10, 100, 5, 5])
    sets = datum_sets(datums, DatumSetSpec(number=2, size_bytes=100), workers=1)
    assert [len(each) for each in sets] == [2, 2, 2]  # size_bytes wins over number


def test_failed_attempts_restart_the_code_and_publish_nothing(sandbox, tmp_path):
    actions = {"a": "ok", "b": "error 1", "c": "crash 1", "d": "exit 1", "e": "ok"}
    exams(sandbox, actions)
    sandbox.specs(batched(tmp_path / "marks", datum_set_spec={"number": 10}))
    summary = sandbox.run()
    assert summary.ok, summary.format_text()
    assert job(summary, "p").processed == 5
    seen = reports(sandbox)
    # Only the successful attempt's out/ was published: the failed one wrote attempt 1.
    assert {exam: report["attempt"] for exam, report in seen.items()} == {
        "a": 1,
        "b": 2,
        "c": 2,
        "d": 2,
        "e": 1,
    }
    pid = {exam: report["start"]["pid"] for exam, report in seen.items()}
    # a, then a new process after each failure; e is served by d's process.
    assert len({pid["a"], pid["b"], pid["c"], pid["d"]}) == 4
    assert pid["e"] == pid["d"]
    log = (sandbox.out / ".bcd" / "logs" / "p" / "worker-0.log").read_text()
    assert "user code reported an error: bad exam b" in log
    assert "user code exited prematurely (killed by SIGKILL)" in log
    assert "user code exited prematurely (exit code 0)" in log
    assert processes_under(sandbox.out) == []


def test_a_datum_failing_every_try_fails_alone_and_timeouts_count(sandbox, tmp_path):
    exams(sandbox, {"a": "ok", "b": "error", "c": "hang 1", "d": "ok"})
    spec = batched(
        tmp_path / "marks", datum_set_spec={"number": 10}, datum_tries=2, datum_timeout="1s"
    )
    sandbox.specs(spec)
    summary = sandbox.run()
    p = job(summary, "p")
    assert (p.status, p.processed, p.failed) == ("failed", 3, 1)
    (failure,) = p.failures
    assert failure.inputs == ["sample_data:/b/"]
    assert "user code reported an error: bad exam b" in failure.reason
    assert sorted(path.name for path in (tmp_path / "marks").glob("b.*")) == [
        "b.attempt1",
        "b.attempt2",
    ]
    assert sorted(reports(sandbox)) == ["a", "c", "d"]
    assert reports(sandbox)["c"]["attempt"] == 2
    log = (sandbox.out / ".bcd" / "logs" / "p" / "worker-0.log").read_text()
    assert "timed out after 1s (datum_timeout/job_timeout); user code killed" in log


def test_err_cmd_runs_on_the_failed_datum_and_recovers_it(sandbox, tmp_path):
    exams(sandbox, {"a": "ok", "b": "error"})
    recovered = tmp_path / "recovered"
    err_cmd = ["sh", "-c", f'ls "$PFS_ROOT/sample_data" >> {recovered}']
    spec = batched(
        tmp_path / "marks",
        datum_set_spec={"number": 2},
        datum_tries=1,
        transform_err_cmd=err_cmd,
    )
    sandbox.specs(spec)
    summary = sandbox.run()
    assert summary.ok, summary.format_text()
    assert (job(summary, "p").processed, job(summary, "p").recovered) == (1, 1)
    assert recovered.read_text() == "b\n"  # with the failed datum laid out
    assert sorted(reports(sandbox)) == ["a"]


def test_code_that_never_asks_for_a_datum_fails_clearly(sandbox, tmp_path):
    exams(sandbox, {"a": "ok"})
    sandbox.specs(batched(tmp_path / "marks", script="print('not batching')", datum_tries=1))
    p = job(sandbox.run(), "p")
    assert p.failed == 1
    assert "exited before asking for a datum (exit code 0)" in p.failures[0].reason
    assert "batch_all_datums" in p.failures[0].reason


def test_batch_all_datums_user_code(sandbox, tmp_path):
    exams(sandbox, {"a": "A", "b": "B", "c": "C"})
    sandbox.specs(
        batched(tmp_path / "marks", script=BATCH_ALL_DATUMS, datum_set_spec={"number": 3})
    )
    summary = sandbox.run()
    assert summary.ok, summary.format_text()
    outputs = {path: text.split() for path, text in sandbox.files("p").items()}
    assert {path: words[1] for path, words in outputs.items()} == {
        "a.txt": "A",
        "b.txt": "B",
        "c.txt": "C",
    }
    # The exception was reported through NextDatum: b was retried in a new process.
    assert outputs["a.txt"][0] != outputs["b.txt"][0] == outputs["c.txt"][0]
    log = (sandbox.out / ".bcd" / "logs" / "p" / "worker-0.log").read_text()
    assert "user code reported an error: ValueError('b fails once')" in log


def test_incremental_runs_skip_reprocess_and_delete_under_batching(sandbox, tmp_path):
    exams(sandbox, {"a": "ok", "b": "ok", "c": "ok"})
    sandbox.specs(batched(tmp_path / "marks"))
    assert sandbox.run().ok
    again = job(sandbox.run(), "p")
    assert (again.processed, again.skipped) == (0, 3)

    data = sandbox.root / "repos" / "sample_data"
    (data / "b" / "action").write_text("ok\n")  # new content, same action
    (data / "c" / "action").unlink()
    (data / "c").rmdir()
    exams(sandbox, {"d": "ok"})
    changed = job(sandbox.run(), "p")
    assert (changed.processed, changed.skipped, changed.deleted) == (2, 1, 1)
    assert sorted(reports(sandbox)) == ["a", "b", "d"]


def test_each_worker_keeps_its_own_root(sandbox, tmp_path):
    exams(sandbox, {exam: "ok" for exam in "abcd"})
    sandbox.specs(batched(tmp_path / "marks", datum_set_spec={"number": 1}))
    assert sandbox.run(workers=2).ok
    seen = reports(sandbox).values()
    roots = {report["start"]["pid"]: report["start"]["env"]["PFS_ROOT"] for report in seen}
    assert len(roots) == 4  # one process per set
    assert len(set(roots.values())) == 2  # on two workers, each with one root
    assert all(report["env"]["PFS_ROOT"] == roots[report["start"]["pid"]] for report in seen)
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert {report["start"]["env"]["OMP_NUM_THREADS"] for report in seen} == {threads}


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for leftovers")
def test_sigkill_mid_batch_publishes_only_finished_datums_and_the_next_run_resumes(
    sandbox, tmp_path
):
    marks = tmp_path / "marks"
    exams(sandbox, {"a": "ok", "b": "ok", "c": "gate"})
    sandbox.specs(batched(marks, datum_set_spec={"number": 3}))
    runner = subprocess.Popen(
        sandbox.cli_args(),
        cwd=PROJECT_ROOT,
        env={**os.environ, "TQDM_DISABLE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for((marks / "c.waiting").exists, "the code to hold datum c")
        wait_for((sandbox.out / "p" / "b" / "report.json").exists, "datum b to be published")
        # c's outputs are written but the code has not asked for the next datum.
        (written,) = (sandbox.out / ".bcd" / "scratch").glob("*/p/worker-0/pfs/out/c/report.json")
        assert written.is_file()
        assert sorted(reports(sandbox)) == ["a", "b"]
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    wait_for(
        lambda: "python3" not in {command(pid) for pid in processes_under(sandbox.out)},
        "the user code to die with the runner",
    )
    assert sorted(reports(sandbox)) == ["a", "b"]

    (marks / "open").touch()
    summary_path = tmp_path / "summary.json"
    resumed = sandbox.cli("--summary-json", str(summary_path))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (p,) = json.loads(summary_path.read_text())["pipelines"]
    assert (p["processed"], p["skipped"]) == (1, 2)
    assert sorted(reports(sandbox)) == ["a", "b", "c"]
    assert processes_under(sandbox.out) == []


def test_a_run_without_pachyderm_sdk_says_what_to_install(sandbox, tmp_path):
    exams(sandbox, {"a": "ok"})
    sandbox.specs(batched(tmp_path / "marks"))
    hide_sdk = (
        "import sys; sys.modules['pachyderm_sdk'] = None; from bcd.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_sdk, *sandbox.cli_args()[3:]],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "transform.datum_batching" in result.stderr
    assert "pip install pachyderm-sdk" in result.stderr
    assert not (sandbox.out / "p").exists()
