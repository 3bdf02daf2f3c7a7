"""A stage killed mid-run or out of disk leaves no partial exam; a re-run completes."""

import json
import os
import signal
import subprocess
import time

import pytest
from helpers import python_module_cmd, write_exam


def published_exams(out):
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_sigkilled_stage_leaves_only_whole_exams_and_rerun_completes(pfs):
    data = pfs / "sample_data"
    exam_ids = [f"exam-{n}" for n in range(6)]
    for seed, exam_id in enumerate(exam_ids):
        write_exam(data, exam_id, size=(1400, 1000), seed=seed)
    stage = subprocess.Popen(python_module_cmd("stages.crop", "--pfs", str(pfs)))
    out = pfs / "out"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.is_dir() and published_exams(out)):
        time.sleep(0.05)
    os.kill(stage.pid, signal.SIGKILL)
    stage.wait()
    killed_at = published_exams(out)
    assert 0 < len(killed_at) < len(exam_ids), "kill came too late to test anything"
    for exam_id in killed_at:  # every published exam is whole
        cropped = json.loads((out / exam_id / "cropped_exam_list.json").read_text())
        assert len(list((out / exam_id / "cropped_images").iterdir())) == 4
        assert cropped["window_location"]

    rerun = subprocess.run(python_module_cmd("stages.crop", "--pfs", str(pfs)), timeout=300)
    assert rerun.returncode == 0
    assert published_exams(out) == exam_ids
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # staging cleaned up


def test_full_disk_is_a_clear_error_and_leaves_no_partial_exam(pfs):
    out = pfs / "out"
    out.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(out)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        for seed in range(3):
            write_exam(pfs / "sample_data", f"exam-{seed}", size=(1400, 1000), seed=seed)
        result = subprocess.run(
            python_module_cmd("stages.crop", "--pfs", str(pfs)),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 3
        assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
        for exam_id in published_exams(out):
            assert len(list((out / exam_id / "cropped_images").iterdir())) == 4
            assert (out / exam_id / "cropped_exam_list.json").is_file()
        assert not [p for p in out.iterdir() if p.name.startswith(".")]
    finally:
        subprocess.run(["umount", str(out)], check=True)
