"""What a datum's command sees and how its outcome is judged (doc sections 3 and 5)."""

from __future__ import annotations

import json
import os
import re
import sys

from runner_sandbox import hand_datum_id, job, pfs, pipeline, sh

from bcd.runner.cli import build_parser
from bcd.runner.resources import default_workers, plan_slots
from bcd.runner.run import RunOptions

REPORT_ENV = """
import json, os, sys
pfs = os.environ["PFS_ROOT"]
seen = {k: v for k, v in os.environ.items() if k.startswith(
    ("PACH_", "PPS_", "sample_data", "models", "OMP_", "MKL_", "BCD_", "FROM_", "PFS_"))}
seen["executable"] = sys.executable
seen["stdin"] = sys.stdin.read()
seen["pfs_entries"] = sorted(os.listdir(pfs))
seen["input_is_link"] = os.path.islink(os.environ["sample_data"])
seen["input_target"] = os.path.realpath(os.environ["sample_data"])
name = os.path.basename(os.environ["sample_data"])
json.dump(seen, open(os.path.join(pfs, "out", name + ".json"), "w"))
"""


def cores() -> int:
    return len(os.sched_getaffinity(0))


def test_environment_and_pfs_layout(sandbox):
    data = sandbox.repo("sample_data", {"e1/a.txt": "1", "e2/a.txt": "2"})
    sandbox.repo("models", {"w.p": "weights"})
    spec = pipeline(
        "envcheck",
        {"cross": [pfs("sample_data", "/*"), pfs("models", "/")]},
        ["python3", "-c", REPORT_ENV],
        transform_env={"FROM_SPEC": "spec", "FROM_BOTH": "spec", "OMP_NUM_THREADS": "99"},
        transform_stdin=["line one", "line two"],
    )
    sandbox.specs(spec)
    summary = sandbox.run(env={"FROM_BOTH": "cli"}, workers=2)
    assert summary.ok, summary.format_text()
    seen = json.loads(sandbox.files("envcheck")["e1.json"])

    pfs_root = seen["PFS_ROOT"]
    assert seen["sample_data"] == f"{pfs_root}/sample_data/e1"  # no trailing slash
    assert seen["models"] == f"{pfs_root}/models"  # glob "/" is the whole repo
    assert seen["input_is_link"] and seen["input_target"] == str((data / "e1").resolve())
    assert seen["pfs_entries"] == ["models", "out", "sample_data"]

    job_id = seen["PACH_JOB_ID"]
    assert seen["PACH_OUTPUT_COMMIT_ID"] == seen["sample_data_COMMIT"] == job_id
    assert seen["models_COMMIT"] == job_id
    assert seen["PPS_PIPELINE_NAME"] == "envcheck"
    assert seen["PPS_PROJECT_NAME"] == "default"

    assert seen["PACH_DATUM_ID"] == hand_datum_id(
        ("sample_data", "sample_data", "master", "/e1/"), ("models", "models", "master", "/")
    )

    assert seen["FROM_SPEC"] == "spec"
    assert seen["FROM_BOTH"] == "cli"  # --env wins over transform.env
    threads = str(max(1, cores() // 2))
    assert seen["OMP_NUM_THREADS"] == seen["MKL_NUM_THREADS"] == threads
    assert seen["BCD_TORCH_THREADS"] == threads
    assert seen["stdin"] == "line one\nline two\n"
    # `python3` in a cmd is the interpreter running bcd run.
    assert os.path.dirname(seen["executable"]) == os.path.dirname(sys.executable)


def test_file_datums_link_only_the_matched_file(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": "A", "e1/b.txt": "B"})
    script = (
        'd=$(dirname "$sample_data"); '
        'echo "$(ls "$d" | tr "\\n" " ")|$([ -L "$d" ] && echo link || echo dir)'
        '|$([ -L "$sample_data" ] && echo link)|$(cat "$sample_data")" '
        '> "$PFS_ROOT/out/$(basename "$sample_data")"'
    )
    sandbox.specs(pipeline("files", pfs("sample_data", "/*/*"), sh(script)))
    assert sandbox.run().ok
    assert sandbox.files("files") == {
        "a.txt": "a.txt |dir|link|A\n",
        "b.txt": "b.txt |dir|link|B\n",
    }


def test_group_datum_links_every_grouped_file_under_one_name(sandbox):
    sandbox.repo("sample_data", {"x-1.txt": "", "y-1.txt": "", "x-2.txt": ""})
    spec = pipeline(
        "grouped",
        {"group": [pfs("sample_data", "/*-(*).txt", group_by="$1")]},
        sh(
            'ls "$PFS_ROOT/sample_data" | tr "\\n" " " '
            '> "$PFS_ROOT/out/$PACH_DATUM_sample_data_GROUP_BY"'
        ),
    )
    sandbox.specs(spec)
    assert sandbox.run().ok
    assert sandbox.files("grouped") == {"1": "x-1.txt y-1.txt ", "2": "x-2.txt "}


def test_outputs_symlinked_to_inputs_are_published_as_content(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": "content"})
    spec = pipeline(
        "linker",
        pfs("sample_data", "/*"),
        sh('ln -s "$sample_data/a.txt" "$PFS_ROOT/out/copy.txt"; mkdir "$PFS_ROOT/out/empty"'),
    )
    sandbox.specs(spec)
    assert sandbox.run().ok
    published = sandbox.out / "linker" / "copy.txt"
    assert not published.is_symlink() and published.read_text() == "content"
    assert not (sandbox.out / "linker" / "empty").exists()  # no empty directories


def test_tries_retry_with_a_fresh_out_folder(sandbox, tmp_path):
    sandbox.repo("sample_data", {"e1/a.txt": ""})
    counter = tmp_path / "counter"
    script = (
        f"n=$(($(cat {counter} 2>/dev/null || echo 0) + 1)); echo $n > {counter}; "
        'touch "$PFS_ROOT/out/attempt-$n"; [ $n -ge 3 ]'
    )
    sandbox.specs(pipeline("flaky", pfs("sample_data", "/*"), sh(script), datum_tries=3))
    summary = sandbox.run()
    assert summary.ok
    assert counter.read_text().strip() == "3"
    assert sandbox.files("flaky") == {"attempt-3": ""}


def test_a_datum_failing_every_try_fails(sandbox, tmp_path):
    sandbox.repo("sample_data", {"e1/a.txt": ""})
    counter = tmp_path / "counter"
    script = f"n=$(($(cat {counter} 2>/dev/null || echo 0) + 1)); echo $n > {counter}; [ $n -ge 3 ]"
    sandbox.specs(pipeline("flaky", pfs("sample_data", "/*"), sh(script), datum_tries=2))
    summary = sandbox.run()
    assert job(summary, "flaky").failed == 1
    assert "exit code 1" in job(summary, "flaky").failures[0].reason
    assert counter.read_text().strip() == "2"


def test_default_tries_is_three(sandbox, tmp_path):
    sandbox.repo("sample_data", {"e1/a.txt": ""})
    counter = tmp_path / "counter"
    script = f"n=$(($(cat {counter} 2>/dev/null || echo 0) + 1)); echo $n > {counter}; exit 1"
    sandbox.specs(pipeline("broken", pfs("sample_data", "/*"), sh(script)))
    assert not sandbox.run().ok
    assert counter.read_text().strip() == "3"


def test_datum_timeout_kills_the_command(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": ""})
    spec = pipeline(
        "slow", pfs("sample_data", "/*"), sh("sleep 60"), datum_timeout="0.5s", datum_tries=1
    )
    sandbox.specs(spec)
    summary = sandbox.run()
    assert "timed out" in job(summary, "slow").failures[0].reason


def test_accept_return_code(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": ""})
    spec = pipeline(
        "three",
        pfs("sample_data", "/*"),
        sh('touch "$PFS_ROOT/out/done"; exit 3'),
        transform_accept_return_code=[3],
    )
    sandbox.specs(spec)
    summary = sandbox.run()
    assert summary.ok and sandbox.files("three") == {"done": ""}


def test_err_cmd_success_makes_the_datum_recovered(sandbox, tmp_path):
    sandbox.repo("sample_data", {"e1/a.txt": "", "e2/a.txt": ""})
    marker = tmp_path / "err-cmd-ran"
    spec = pipeline(
        "recovering",
        pfs("sample_data", "/*"),
        sh('touch "$PFS_ROOT/out/$(basename $sample_data)"; [ "$(basename $sample_data)" = e1 ]'),
        transform_err_cmd=["sh", "-c", f'echo "$PACH_DATUM_ID" >> {marker}'],
        datum_tries=2,
    )
    sandbox.specs(spec)
    summary = sandbox.run()
    recovering = job(summary, "recovering")
    assert summary.ok, summary.format_text()
    assert (recovering.processed, recovering.recovered, recovering.failed) == (1, 1, 0)
    assert sandbox.files("recovering") == {"e1": ""}  # a recovered datum publishes nothing
    assert len(marker.read_text().split()) == 2  # err_cmd ran after each failed attempt
    again = job(sandbox.run(), "recovering")
    assert (again.skipped, again.recovered) == (1, 1)  # recovered datums run again


def test_two_datums_writing_one_path_fail_the_job(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": "", "e2/a.txt": ""})
    spec = pipeline(
        "clash", pfs("sample_data", "/*"), sh('basename "$sample_data" > "$PFS_ROOT/out/same.txt"')
    )
    sandbox.specs(spec)
    summary = sandbox.run()
    clash = job(summary, "clash")
    assert clash.status == "failed"
    assert "duplicate path output by different datums: /same.txt" in clash.reason
    named = re.search(r"datums ([0-9a-f]{64}) and ([0-9a-f]{64})", clash.reason)
    expected = {
        hand_datum_id(("sample_data", "sample_data", "master", f"/{e}/")) for e in ("e1", "e2")
    }
    assert named is not None and set(named.groups()) == expected
    assert sandbox.files("clash")["same.txt"] in ("e1\n", "e2\n")


def test_file_directory_collision_fails_the_job(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": "", "e2/a.txt": ""})
    script = (
        'if [ "$(basename $sample_data)" = e1 ]; then touch "$PFS_ROOT/out/x"; '
        'else mkdir "$PFS_ROOT/out/x"; touch "$PFS_ROOT/out/x/y"; fi'
    )
    sandbox.specs(pipeline("shape", pfs("sample_data", "/*"), sh(script)))
    assert "file/directory collision" in job(sandbox.run(), "shape").reason


def test_failure_is_isolated_and_downstream_is_unrunnable(sandbox):
    sandbox.repo("sample_data", {"a/x": "", "b/x": "", "c/x": ""})
    first = pipeline(
        "first",
        pfs("sample_data", "/*"),
        sh('n=$(basename $sample_data); [ $n != b ] && touch "$PFS_ROOT/out/$n"'),
    )
    second = pipeline("second", pfs("first", "/"), sh('touch "$PFS_ROOT/out/ran"'))
    third = pipeline("third", pfs("second", "/"), sh('touch "$PFS_ROOT/out/ran"'))
    sandbox.specs(first, second, third)
    result = sandbox.cli("--summary-json", str(sandbox.root / "summary.json"))
    assert result.returncode == 1, result.stderr
    assert sandbox.files("first") == {"a": "", "c": ""}
    report = json.loads((sandbox.root / "summary.json").read_text())
    statuses = {entry["pipeline"]: entry["status"] for entry in report["pipelines"]}
    assert statuses == {"first": "failed", "second": "unrunnable", "third": "unrunnable"}
    failure = report["pipelines"][0]["failures"][0]
    assert failure["inputs"] == ["sample_data:/b/"]
    assert os.path.isfile(failure["log"])
    assert not (sandbox.out / "second" / "ran").exists()
    assert "first" in result.stdout and "unrunnable" in result.stdout


def test_exam_error_records_are_reported_once_and_fail_the_run(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": "", "e2/a.txt": ""})
    record = {"exam": "e2", "stage": "crop", "file": "a.txt", "reason": "unreadable image"}
    script = (
        "import json, os\n"
        "name = os.path.basename(os.environ['sample_data'])\n"
        "os.makedirs(os.path.join(os.environ['PFS_ROOT'], 'out', name))\n"
        f"record = {record!r} if name == 'e2' else {{}}\n"
        "path = os.path.join(os.environ['PFS_ROOT'], 'out', name, "
        "'error.json' if record else 'ok.txt')\n"
        "json.dump(record, open(path, 'w'))\n"
    )
    first = pipeline("crop", pfs("sample_data", "/*"), ["python3", "-c", script])
    # Downstream passes the record through unchanged, as the stages do.
    second = pipeline("next", pfs("crop", "/*"), sh('cp -r "$crop" "$PFS_ROOT/out/"'))
    sandbox.specs(first, second)
    result = sandbox.cli("--summary-json", str(sandbox.root / "summary.json"))
    assert result.returncode == 1
    report = json.loads((sandbox.root / "summary.json").read_text())
    assert all(entry["status"] == "success" for entry in report["pipelines"])
    (error,) = report["failed_exams"]
    assert {key: error[key] for key in record} == record
    assert sorted(error["found_in"]) == ["crop/e2/error.json", "next/e2/error.json"]
    assert "unreadable image" in result.stdout


def test_cli_exit_zero_when_all_is_well(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": ""})
    sandbox.specs(pipeline("fine", pfs("sample_data", "/*"), ["true"]))
    result = sandbox.cli()
    assert result.returncode == 0, result.stderr
    assert "fine" in result.stdout


def test_unknown_input_repo_is_a_clear_error(sandbox):
    sandbox.specs(pipeline("lost", pfs("nowhere", "/*"), ["true"]))
    result = sandbox.cli()
    assert result.returncode == 2
    assert "'nowhere'" in result.stderr and "--repo nowhere=DIR" in result.stderr


def test_gpu_pipelines_run_one_datum_per_gpu(sandbox, tmp_path, monkeypatch):
    sandbox.repo("sample_data", {f"e{i}/a.txt": "" for i in range(4)})
    busy = tmp_path / "busy"
    # mkdir is atomic: a second datum running at the same time on the same GPU fails.
    script = (
        f'mkdir "{busy}-$CUDA_VISIBLE_DEVICES" || exit 9; sleep 0.3; '
        f'echo "$CUDA_VISIBLE_DEVICES" > "$PFS_ROOT/out/$(basename $sample_data)"; '
        f'rmdir "{busy}-$CUDA_VISIBLE_DEVICES"'
    )
    spec = pipeline(
        "gpu",
        pfs("sample_data", "/*"),
        sh(script),
        resource_limits={"gpu": {"type": "nvidia.com/gpu", "number": 1}},
        datum_tries=1,
    )
    sandbox.specs(spec)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    summary = sandbox.run(workers=4)
    assert summary.ok, summary.format_text()
    assert set(sandbox.files("gpu").values()) <= {"0\n", "1\n"}
    assert len(sandbox.files("gpu")) == 4


def test_cli_and_library_share_the_workers_default():
    assert build_parser().parse_args([]).workers == RunOptions().workers == default_workers()
    assert 1 <= default_workers() <= 2


def test_gpu_pipelines_without_a_gpu_here_run_like_cpu_pipelines():
    slots = plan_slots(workers=2, gpus_per_datum=1, gpus=[], cores=2, tasks=2)
    assert slots.gpu_sets == ((), ()) and slots.threads == 1
    with_gpus = plan_slots(workers=4, gpus_per_datum=1, gpus=["0", "1"], cores=16, tasks=4)
    assert with_gpus.gpu_sets == (("0",), ("1",)) and with_gpus.threads == 8


def test_cores_go_to_the_datums_that_actually_run(sandbox):
    sandbox.repo("sample_data", {"e1/a.txt": ""})
    sandbox.specs(
        pipeline("one", pfs("sample_data", "/*"), sh('echo $OMP_NUM_THREADS > "$PFS_ROOT/out/t"'))
    )
    assert sandbox.run(workers=2).ok
    # One exam with two workers: the one datum running gets every core.
    assert sandbox.files("one") == {"t": f"{cores()}\n"}
    assert plan_slots(workers=2, gpus_per_datum=0, gpus=[], cores=2, tasks=1).threads == 2
    assert plan_slots(workers=2, gpus_per_datum=0, gpus=[], cores=2, tasks=5).threads == 1
