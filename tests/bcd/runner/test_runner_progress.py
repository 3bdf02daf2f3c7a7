"""What running datums are doing, on `bcd run`'s bar: user code that counts its steps with
stages.progress, batched and not, one and two workers, through the real `bcd run`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from runner_sandbox import PROJECT_ROOT, Sandbox, pfs, pipeline, wait_for

from bcd.runner.progress import describe

# Each exam: 7 steps; after the third the code waits until `<marks>/<exam>.go` or
# `<marks>/go` exists, so the bar can be read while it waits.
COUNT_STEPS = r"""
import os, sys, time
from pathlib import Path
from stages.progress import PROGRESS_INTERVAL_S, exam_started, exam_steps

marks = Path(os.environ["MARKS"])
stage = os.environ["PPS_PIPELINE_NAME"]

def work(exam, out):
    exam_started(stage, exam)
    for step in exam_steps(stage, exam, range(7), "items"):
        if step == 2:
            time.sleep(PROGRESS_INTERVAL_S)  # so that done = 3 is written, not skipped
        if step == 3:
            while not ((marks / f"{exam}.go").exists() or (marks / "go").exists()):
                time.sleep(0.05)
    (out / exam).write_text("done")

if sys.argv[1] == "batched":
    from pachyderm_sdk import Client
    worker = Client().worker
    while True:
        reply = worker.next_datum()
        env = dict(item.split("=", 1) for item in reply.env)
        work(os.path.basename(env["sample_data"]), Path(env["PFS_ROOT"]) / "out")
else:
    work(os.path.basename(os.environ["sample_data"]), Path(os.environ["PFS_ROOT"]) / "out")
"""


def counting(marks: Path, batched: bool, **fields: Any) -> dict[str, Any]:
    marks.mkdir(exist_ok=True)
    mode = "batched" if batched else "one"
    return pipeline(
        "p",
        pfs("sample_data", "/*"),
        ["python3", "-c", COUNT_STEPS, mode],
        transform_datum_batching=batched,
        transform_env={"MARKS": str(marks)},
        **fields,
    )


def start_run(sandbox: Sandbox, workers: int) -> tuple[subprocess.Popen[bytes], Path]:
    """`bcd run` with its bar on; its stderr goes to a file read while it runs."""
    stderr = sandbox.root / "stderr"
    args = sandbox.cli_args()
    args[args.index("--workers") + 1] = str(workers)
    with open(stderr, "wb") as output:
        process = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={key: value for key, value in os.environ.items() if not key.startswith("TQDM_")},
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    return process, stderr


def bar_states(stderr: Path) -> list[str]:
    """Every state the bars were drawn in (tqdm redraws a line after a carriage return)."""
    return re.split(r"[\r\n]", stderr.read_text(encoding="utf-8", errors="replace"))


def shown(stderr: Path, *statuses: str) -> bool:
    """Whether one state of the pipeline's bar showed all of `statuses` at once."""
    return any(
        state.startswith("p:") and all(status in state for status in statuses)
        for state in bar_states(stderr)
    )


def datum_logs(sandbox: Sandbox) -> str:
    return "".join(path.read_text() for path in sorted((sandbox.out / ".bcd/logs/p").iterdir()))


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batched"])
def test_the_bar_shows_each_running_datum_with_its_exam_and_counts(sandbox, batched):
    marks = sandbox.root / "marks"
    sandbox.repo("sample_data", {"exam-a/x": "a", "exam-b/x": "b"})
    sandbox.specs(counting(marks, batched))
    process, stderr = start_run(sandbox, workers=2)
    try:
        # Both workers at once, each with its own exam, under the one bar.
        wait_for(
            lambda: shown(stderr, "exam-a: 3/7 items, ETA ", " | ", "exam-b: 3/7 items, ETA "),
            "both datums' progress on the bar",
        )
        (marks / "go").touch()
        assert process.wait(timeout=120) == 0, stderr.read_text()[-2000:]
    finally:
        process.kill()
    logs = datum_logs(sandbox)
    for exam in ("exam-a", "exam-b"):
        assert f"=== bcd run: last progress: {exam}: 7/7 items\n" in logs
    assert sorted((sandbox.out / "p").iterdir()) == [
        sandbox.out / "p" / "exam-a",
        sandbox.out / "p" / "exam-b",
    ]


def test_one_warm_process_shows_each_datum_in_turn(sandbox):
    marks = sandbox.root / "marks"
    exams = ("exam-a", "exam-b", "exam-c")
    sandbox.repo("sample_data", {f"{exam}/x": exam for exam in exams})
    sandbox.specs(counting(marks, batched=True, datum_set_spec={"number": 3}))
    process, stderr = start_run(sandbox, workers=1)
    try:
        for exam in exams:
            wait_for(lambda exam=exam: shown(stderr, f"{exam}: 3/7 items"), f"{exam} on the bar")
            (marks / f"{exam}.go").touch()
        assert process.wait(timeout=120) == 0, stderr.read_text()[-2000:]
    finally:
        process.kill()
    log = (sandbox.out / ".bcd/logs/p/worker-0.log").read_text()
    assert log.count("=== bcd run: user code started") == 1
    # Each datum's last record, logged after it and before the next one is handed out.
    sections = re.split(r"^(?==== bcd run: datum )", log, flags=re.M)[1:]
    assert [re.findall(r"last progress: (.*)", section) for section in sections] == [
        [f"{exam}: 7/7 items"] for exam in exams
    ]


def record(**fields: Any) -> dict[str, Any]:
    base = {"stage": "p", "exam": "exam-7", "unit": "patches", "started": 100.0}
    return {**base, **fields}


def test_a_status_says_exam_counts_and_the_time_left_at_the_rate_so_far():
    # 250 patches in the 10 s to the record: 25/s, 750 left = 30 s, 2 s of which passed.
    status = describe(record(done=250, total=1000, updated=110.0), "p", now=112.0)
    assert status == "exam-7: 250/1,000 patches, ETA 0:28"
    long = describe(record(done=1, total=400, updated=130.0), "p", now=130.0)
    assert long == "exam-7: 1/400 patches, ETA 3:19:30"  # 30 s each for 399 more
    assert describe(record(done=0, total=0, unit="", updated=100.0), "p", 101.0) == "exam-7"
    done = describe(record(done=1000, total=1000, updated=150.0), "p", 160.0)
    assert done == "exam-7: 1,000/1,000 patches"
    # In the single-stage pipeline the stage is named too.
    inside = describe(record(stage="classify", done=3, total=10, updated=103.0), "bc", 103.0)
    assert inside == "exam-7 classify: 3/10 patches, ETA 0:07"
