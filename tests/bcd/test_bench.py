"""`bcd bench`: the quick mode end to end as a real subprocess, and its measuring parts.

Only structure and sanity are asserted (every figure present and positive): timings
depend on the machine and are never asserted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, python_module_cmd, write_exam

from bcd.bench.backends import busy_process
from bcd.bench.cli import parse_args, warm_workers_on
from bcd.bench.processes import CommandFailed, run_measured
from bcd.bench.report import _busy_lines, _gpu_lines, _warm_lines, format_report
from bcd.models.demo_weights import write_demo_weights

STAGES = ("crop", "extract_centers", "generate_heatmaps", "classify")
REPORT_STAGES = ("visualize", "summary")


def test_peak_rss_is_the_commands_own(tmp_path):
    # 200 MB of ones, allocated by a child of this (torch-loaded) test process.
    allocate = "import numpy as np; a = np.ones(25_000_000); a += 1"
    big = run_measured([sys.executable, "-c", allocate], tmp_path / "log")
    small = run_measured([sys.executable, "-c", "pass"], tmp_path / "log")
    assert 190 < big.peak_rss_mib - small.peak_rss_mib < 260
    assert small.peak_rss_mib < 100  # not this process's own peak
    assert big.seconds > 0 and small.seconds > 0


def test_failed_command_names_its_log(tmp_path):
    with pytest.raises(CommandFailed, match="exit 3"):
        run_measured([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "log")
    assert "sys.exit(3)" in (tmp_path / "log").read_text()


def test_reference_must_be_a_checkout(tmp_path):
    done = subprocess.run(
        python_module_cmd("bcd.cli", "bench", "--quick", "--reference", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "not a breast_cancer_classifier checkout" in done.stderr


def _positive(row: dict, *keys: str) -> None:
    for key in keys:
        assert row[key] > 0, (key, row)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    root = tmp_path_factory.mktemp("bench")
    result_file = root / "bench.json"
    done = subprocess.run(
        python_module_cmd(
            "bcd.cli",
            "bench",
            "--quick",
            "--warm-workers",
            "0",  # measured on smaller exams below
            "--json",
            str(result_file),
            "--work",
            str(root / "w"),
        ),
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(result_file.read_text()), done.stdout, root / "w"


def test_quick_bench_measures_every_stage(quick):
    result, _, _ = quick
    assert result["mode"] == "quick" and result["complete"] is True
    assert result["machine"]["cores"] >= 1 and result["machine"]["threads"] >= 1
    assert result["settings"]["images"] == 4
    assert result["peak_gflops"]["fp32"] > 0
    assert list(result["stages"]) == [*STAGES, *REPORT_STAGES]
    for row in result["stages"].values():
        _positive(row, "seconds", "images_per_s", "peak_rss_mib")
        assert row["spec_memory"]  # the committed spec's request, shown beside it
    heatmaps = result["stages"]["generate_heatmaps"]
    _positive(heatmaps, "patches", "patches_scored", "patches_per_s", "gflops_effective")
    assert heatmaps["patches"] == heatmaps["patches_scored"] + heatmaps["background_skipped"]
    _positive(result["end_to_end"], "seconds", "peak_rss_mib")
    total = sum(result["stages"][name]["seconds"] for name in STAGES)
    assert result["end_to_end"]["seconds"] == pytest.approx(total)


def test_quick_bench_reruns_generate_heatmaps_with_its_conversion_cached(quick):
    result, stdout, work = quick
    cached = result["cached_conversion"]
    _positive(cached["generate_heatmaps"], "seconds", "peak_rss_mib", "patches_per_s")
    assert cached["identical"] is True
    first = result["stages"]["generate_heatmaps"]["seconds"]
    assert cached["saved_s"] == pytest.approx(first - cached["generate_heatmaps"]["seconds"])
    for run in ("converting", "cached"):
        _positive(cached["classify_openvino"][run], "seconds", "peak_rss_mib")
    assert cached["classify_openvino"]["prediction_max_abs_vs_torch"] < 1e-5
    log = (work / "ours.log").read_text()
    assert "converted in" in log and "OpenVINO PatchDenseNet121 for" in log
    assert "from the cache" in log  # the cached run's, and only from the bench's own folder
    assert str(work / "openvino-cache") in log
    assert "conversion cached" in stdout and "same bytes: yes" in stdout
    assert "classify on OpenVINO (auto: torch" in stdout


def test_quick_bench_measures_the_network_against_the_peak(quick):
    network = quick[0]["network"]
    # DenseNet-121 at 256 x 256: ~7.4 GFLOP (2 per multiply-add), far from 1 or 100.
    assert 5 < network["gflop_per_patch"] < 10
    throughput = network["throughput"]
    # torch's rows keep their names; OpenVINO's beside them, the same precisions.
    torch_rows = [name for name, row in throughput.items() if row["backend"] == "torch"]
    assert torch_rows[0] == "fp32 (exact, the default)"
    assert [name for name in throughput if name not in torch_rows] == [
        f"openvino {name}" for name in torch_rows
    ]
    for row in throughput.values():
        _positive(row, "patches_per_s", "gflops", "of_peak")
    assert throughput["openvino fp32 (exact, the default)"]["peak"] == "fp32"
    assert set(network["batch"]) == {"torch", "openvino"}
    for size in network["batch"].values():
        assert 0 < size <= 32 and network["patches"] >= size
    assert set(network["backend_versions"]) == {"torch", "openvino"}


def test_quick_bench_times_heatmaps_on_each_backend_beside_a_busy_process(quick):
    busy = quick[0]["busy_cpu"]
    assert (busy["stage"], busy["busy_processes"]) == ("generate_heatmaps", 1)
    assert busy["exam"] == quick[0]["settings"]["exam"]
    seconds = busy["seconds"]
    assert list(seconds) == ["torch", "openvino"]
    for backend, row in seconds.items():
        assert list(row) == ["quiet", "busy"]
        _positive(row, "quiet", "busy")
        assert busy["slowdown"][backend] == pytest.approx(row["busy"] / row["quiet"])
    for load in ("quiet", "busy"):
        expected = seconds["torch"][load] / seconds["openvino"][load]
        assert busy["openvino_speedup"][load] == pytest.approx(expected)
    log = (quick[2] / "busy" / "busy.log").read_text()
    # Quiet and busy, fresh processes; OpenVINO once more first, filling its cache.
    assert log.count("--backend torch") == 2 and log.count("--backend openvino") == 3
    assert log.count("converted in") == 1 and log.count("from the cache") == 2


def test_quick_bench_runs_the_fast_mode_and_measures_its_deviation(quick):
    fast = quick[0]["fast"]
    assert fast["requested"] == "bf16"
    if fast["used"] == "fp32":
        assert fast["note"]  # a machine without bf16 says so instead of pretending
        return
    for row in fast["stages"].values():
        _positive(row, "seconds", "peak_rss_mib")
    deviation = fast["deviation"]
    assert 0 < deviation["heatmap_max_abs"] < 2e-2
    assert 0 < deviation["heatmap_mean_abs"] <= deviation["heatmap_max_abs"]
    assert deviation["prediction_max_abs"] < 2e-2


def test_quick_bench_scales_through_bcd_run(quick):
    scaling = quick[0]["scaling"]
    plan = [(run["exams"], run["workers"]) for run in scaling["runs"]]
    assert plan == [(1, 1), (2, 1), (2, 2)]
    for run in scaling["runs"]:
        _positive(run, "seconds", "seconds_per_exam")
        assert run["seconds_per_exam"] == pytest.approx(run["seconds"] / run["exams"])
        assert {"crop", "generate_heatmaps", "classify"} <= run["pipeline_seconds"].keys()


def test_quick_bench_prints_a_table(quick):
    result, stdout, _ = quick
    for stage in STAGES:
        assert stage in stdout
    assert result["machine"]["cpu"] in stdout
    assert "fast mode" in stdout and "bcd run" in stdout
    assert "network only, openvino fp32" in stdout and "busy CPU: generate_heatmaps" in stdout


def test_busy_process_is_killed_when_the_measured_command_fails(tmp_path):
    with pytest.raises(CommandFailed, match="exit 4"), busy_process() as spinner:
        pid = spinner.pid
        assert spinner.poll() is None  # spinning while the command runs
        run_measured([sys.executable, "-c", "import sys; sys.exit(4)"], tmp_path / "log")
    assert spinner.returncode == -signal.SIGKILL
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped: no zombie left


def test_busy_process_ends_by_itself_when_the_bench_dies():
    # A bench killed outright (no finally runs): its busy process must not spin on forever.
    dies = (
        "import os; from bcd.bench.backends import busy_process\n"
        "with busy_process() as spinner:\n"
        "    print(spinner.pid, flush=True)\n"
        "    os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", dies], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 9, done.stderr
    stat = Path(f"/proc/{int(done.stdout)}/stat")
    for _ in range(300):  # a guard only: it ends within one loop of its parent's exit
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.1)
    pytest.fail(f"busy process {done.stdout.strip()} still running after the bench died")


def test_busy_row_is_on_by_default_and_can_be_skipped():
    assert parse_args([]).busy is True and parse_args(["--quick"]).busy is True
    assert parse_args(["--quick", "--no-busy"]).busy is False


def test_busy_row_prints_slowdowns_and_speedups():
    busy = {
        "stage": "generate_heatmaps",
        "exam": "e1",
        "threads": 2,
        "busy_processes": 1,
        "seconds": {
            "torch": {"quiet": 20.0, "busy": 80.0},
            "openvino": {"quiet": 10.0, "busy": 16.0},
        },
        "slowdown": {"torch": 4.0, "openvino": 1.6},
        "openvino_speedup": {"quiet": 2.0, "busy": 5.0},
    }
    lines = _busy_lines(busy)
    assert "generate_heatmaps (fp32, CPU) on e1, 2 threads" in lines[1]
    assert lines[3].split() == ["torch", "20.0", "80.0", "4.00x"]
    assert lines[4].split() == ["openvino", "10.0", "16.0", "1.60x"]
    assert lines[5] == "  openvino vs torch: 2.00x quiet, 5.00x busy"


def test_gpu_figures_are_printed_beside_the_cpu_run():
    deviation = {"exam": "e1", "heatmap_max_abs": 4.8e-7, "heatmap_mean_abs": 3.9e-8}
    result = {
        "mode": "full",
        "machine": {"cpu": "cpu", "cores": 2, "threads": 2, "torch": "t", "date": "d"},
        "settings": {"exam": "e1", "images": 4, "epochs": 10, "weights": "w"},
        "gpu": {
            "name": "Some GPU",
            "stages": {
                "generate_heatmaps fp32": {
                    "seconds": 15.0,
                    "peak_rss_mib": 1000,
                    "patches_per_s": 200,
                },
                "classify fp32": {"seconds": 12.0, "peak_rss_mib": 1500},
            },
            "deviation_from_cpu": {**deviation, "prediction_max_abs": 5.7e-8},
            "fast": {
                "stages": {"generate_heatmaps": {"seconds": 10.0, "peak_rss_mib": 1100}},
                "deviation": {**deviation, "prediction_max_abs": 1.6e-3},
            },
        },
    }
    cpu = {"generate_heatmaps": {"seconds": 60.0}, "classify": {"seconds": 24.0}}
    lines = _gpu_lines(result["gpu"], cpu)
    assert "GPU Some GPU" in lines[1]
    assert "200.0 patches/s; vs CPU exact 4.00x" in lines[2]
    assert "vs CPU exact 2.00x" in lines[3]
    assert "generate_heatmaps bf16" in lines[4] and "6.00x" in lines[4]
    assert "the CPU run (fp32) on e1: heatmaps max 4.80e-07" in lines[5]
    assert "predictions max 1.60e-03" in lines[6]
    assert "GPU Some GPU" in format_report(result)


def test_warm_workers_are_part_of_quick_and_need_two_exams(capsys):
    assert parse_args(["--quick"]).warm_workers == 2
    assert parse_args([]).warm_workers == 0
    assert parse_args(["--warm-workers", "3"]).warm_workers == 3
    with pytest.raises(SystemExit):
        parse_args(["--warm-workers", "1"])
    assert "at least 2 exams" in capsys.readouterr().err


WARM_ROW_KEYS = {
    "exams", "unbatched_s", "unbatched_s_per_exam", "unbatched_peak_rss_mib", "batched_s",
    "batched_ready_s", "batched_datum_s", "batched_peak_rss_mib", "startup_s",
    "steady_s_per_exam", "exams_per_hour", "target_s", "target_met", "identical",
}  # fmt: skip


def test_one_warm_process_writes_what_one_process_per_exam_writes(tmp_path):
    """The warm-worker part on 2 small exams, exact fp32 (bf16 runs the same code with
    another flag): its figures, and the batched outputs equal to the unbatched ones."""
    write_exam(tmp_path / "sources", "small", size=(380, 480))
    models = tmp_path / "models"
    models.mkdir()
    write_demo_weights(models)
    args = parse_args(["--quick", "--no-fast"])
    work = tmp_path / "warm"
    part = warm_workers_on("cpu", [tmp_path / "sources" / "small"], models, work, args)

    assert (part["device"], part["exam"], part["exams"], part["epochs"]) == ("cpu", "small", 2, 1)
    assert list(part["precisions"]) == ["fp32"]
    rows = part["precisions"]["fp32"]
    assert list(rows) == ["generate_heatmaps", "classify", "both"]
    for stage in ("generate_heatmaps", "classify"):
        row = rows[stage]
        assert row.keys() == WARM_ROW_KEYS
        assert len(row["unbatched_s_per_exam"]) == len(row["batched_datum_s"]) == 2
        _positive(row, "unbatched_s", "batched_s", "batched_ready_s", "steady_s_per_exam")
        assert row["exams_per_hour"] == pytest.approx(3600 / row["steady_s_per_exam"])
        assert row["target_s"] == pytest.approx(row["unbatched_s"] - row["startup_s"])
        assert row["identical"] is True
        # Compared here too: every file of each exam, byte for byte.
        for exam in ("small", "small-copy1"):
            alone = work / "fp32" / stage / "unbatched" / exam / "out"
            warm = work / "fp32" / stage / "batched" / exam / "out"
            files = sorted(path.relative_to(alone) for path in alone.rglob("*") if path.is_file())
            assert files == sorted(p.relative_to(warm) for p in warm.rglob("*") if p.is_file())
            assert {"heatmaps_provenance.json", "predictions.json"} & {f.name for f in files}
            for file in files:
                assert (alone / file).read_bytes() == (warm / file).read_bytes(), file
        log = (work / "fp32" / stage / "stage.log").read_text()
        assert log.count("BCD_DATUM_BATCHING=1") == 1  # one process served both exams
        assert log.count("set up once, serving datums") == 1
    both = rows["both"]
    assert both["steady_s_per_exam"] == pytest.approx(
        rows["generate_heatmaps"]["steady_s_per_exam"] + rows["classify"]["steady_s_per_exam"]
    )
    table = "\n".join(_warm_lines(part))
    assert "warm workers on cpu: 2 exams (copies of small)" in table
    assert table.count(" fp32 ") == 3 and "identical" in table
    assert _warm_lines({"skipped": "not measured on CUDA: no GPU"})[1] == (
        "warm workers: not measured on CUDA: no GPU"
    )
