"""The pipelined per-exam loop: load ahead and write behind on threads, each exam whole.

Real files and real threads; the overlap is shown by events one step waits for and the
other sets (with a timeout, so a loop that does not overlap fails instead of hanging).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from stages.core.errors import DataError
from stages.harness import EXIT_STRICT_DATA_ERRORS, run_exams_pipelined
from stages.io.pfs import STAGING_PREFIX

WAIT_S = 60


def write_result(exam_id: str, computed: str, staging: Path) -> None:
    (staging / "result.txt").write_text(computed)


def published(pfs: Path) -> dict[str, dict[str, str]]:
    """Per exam directory under out/, its files' texts; staging left over fails the test."""
    out = pfs / "out"
    assert not [path.name for path in out.iterdir() if path.name.startswith(STAGING_PREFIX)]
    return {
        exam.name: {path.name: path.read_text() for path in sorted(exam.iterdir())}
        for exam in sorted(out.iterdir())
    }


def stage_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("bcd-t")]


def test_the_next_exam_loads_and_the_previous_one_writes_while_one_computes(pfs):
    next_loaded = {"a": threading.Event(), "b": threading.Event()}
    written = {"a": threading.Event()}
    computing = threading.current_thread()

    def load(exam_id: str) -> str:
        assert exam_id == "a" or threading.current_thread() is not computing
        if exam_id in ("b", "c"):
            next_loaded["a" if exam_id == "b" else "b"].set()
        return f"{exam_id}:loaded"

    def compute(exam_id: str, loaded: str) -> str:
        if exam_id in next_loaded:
            assert next_loaded[exam_id].wait(WAIT_S), f"{exam_id}: the next exam did not load"
        if exam_id == "b":
            assert written["a"].wait(WAIT_S), "a was not written while b computed"
        return f"{loaded}:computed"

    def write(exam_id: str, computed: str, staging: Path) -> None:
        assert threading.current_thread() is not computing
        write_result(exam_id, computed, staging)
        if exam_id in written:
            written[exam_id].set()

    assert run_exams_pipelined("test", pfs, ["a", "b", "c"], load, compute, write) == 0
    assert published(pfs) == {
        exam: {"result.txt": f"{exam}:loaded:computed"} for exam in ("a", "b", "c")
    }
    assert stage_threads() == []


def test_a_data_error_at_any_step_is_that_exams_record_only(pfs):
    exams = ["good-1", "bad-load", "good-2", "bad-compute", "upstream", "bad-write", "good-3"]
    failed_upstream = {"exam": "upstream", "stage": "crop", "file": "x.png", "reason": "empty"}
    (pfs / "crop" / "upstream").mkdir(parents=True)
    (pfs / "crop" / "upstream" / "error.json").write_text(json.dumps(failed_upstream))
    loads = []

    def load(exam_id: str) -> str:
        loads.append(exam_id)
        if exam_id == "bad-load":
            raise DataError("unreadable image", file="cropped_images/L_CC.png")
        return exam_id

    def compute(exam_id: str, loaded: str) -> str:
        if exam_id == "bad-compute":
            raise DataError("no tissue", file="data.json")
        return f"{loaded}:computed"

    def write(exam_id: str, computed: str, staging: Path) -> None:
        write_result(exam_id, computed, staging)
        if exam_id == "bad-write":
            raise DataError("cannot be written", file="result.txt")

    code = run_exams_pipelined("test", pfs, exams, load, compute, write, upstream_inputs=["crop"])
    assert code == 0
    outputs = published(pfs)
    for exam in ("good-1", "good-2", "good-3"):
        assert outputs[exam] == {"result.txt": f"{exam}:computed"}
    for exam, file, reason in (
        ("bad-load", "cropped_images/L_CC.png", "unreadable image"),
        ("bad-compute", "data.json", "no tissue"),
        ("bad-write", "result.txt", "cannot be written"),
    ):
        assert list(outputs[exam]) == ["error.json"]  # the half-written result is gone
        record = json.loads(outputs[exam]["error.json"])
        assert record == {"exam": exam, "stage": "test", "file": file, "reason": reason}
    assert json.loads(outputs["upstream"]["error.json"]) == failed_upstream
    assert "upstream" not in loads
    assert sorted(loads) == sorted(set(exams) - {"upstream"})  # each loaded once

    strict = run_exams_pipelined(
        "test", pfs, exams, load, compute, write, upstream_inputs=["crop"], strict=True
    )
    assert strict == EXIT_STRICT_DATA_ERRORS


def test_a_fault_stops_the_loop_with_every_thread_joined(pfs):
    written_a = threading.Event()

    def compute(exam_id: str, loaded: str) -> str:
        if exam_id == "b":
            assert written_a.wait(WAIT_S)
            raise RuntimeError("out of device memory")
        return loaded

    def write(exam_id: str, computed: str, staging: Path) -> None:
        write_result(exam_id, computed, staging)
        written_a.set()

    with pytest.raises(RuntimeError, match="out of device memory"):
        run_exams_pipelined("test", pfs, ["a", "b", "c"], str, compute, write)
    assert stage_threads() == []
    # a, written before the fault, is published whole; b and c are not published at all.
    assert published(pfs) == {"a": {"result.txt": "a"}}
