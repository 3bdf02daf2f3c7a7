"""Warm workers: N exams through one batched stage process against one process per exam.

For generate_heatmaps, then classify, each exam gets a pfs root of its own (its inputs
linked, an empty out/), as a datum does. Unbatched: `python -m stages.<stage> --pfs ROOT`
once per exam, each a fresh process. Batched: one process with BCD_DATUM_BATCHING=1,
handed the roots in turn through bcd run's own Worker API server (`worker_api`), as
Pachyderm's worker serves a datum set; the moment of each NextDatum call is the end of
the datum before it.

Per stage: ready = process start to the first NextDatum call (torch, the device); the
first datum also loads the weights; steady = the mean of the datums after the first;
start-up = the end of the first datum - steady, what every unbatched process pays again.
The issue's target: batched seconds <= unbatched seconds - (N - 1) x start-up, with 5%
allowance; reported as a figure, met or not. The outputs of both runs are compared byte
for byte.
"""

from __future__ import annotations

import itertools
import queue
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcd.bench.ours import stage_command
from bcd.bench.processes import CommandFailed, run_measured
from bcd.runner.execute import kill_group
from bcd.runner.worker_api import PORT_ENV, NextDatumCall, WorkerApiServer
from stages.table import (
    CLASSIFY,
    CROP,
    DATUM_BATCHING_ENV,
    EXTRACT_CENTERS,
    GENERATE_HEATMAPS,
    MODELS,
)

STAGES = (GENERATE_HEATMAPS, CLASSIFY)
TARGET_ALLOWANCE = 0.05
# What one exam's stage may take before the bench gives up on a batched process.
DATUM_LIMIT_S = 3600.0


@dataclass(frozen=True)
class BatchedRun:
    """One batched process over the exams: when it was ready and when each datum ended."""

    seconds: float  # process start to the end of the last datum
    ready_s: float
    datum_s: list[float]
    peak_rss_mib: float | None


def exam_root(folder: Path, exam: str, inputs: Mapping[str, Path], models: Path) -> Path:
    """A datum's pfs root: `<input>/<exam>` linked from each input repo, models, out/."""
    for name, repo in inputs.items():
        (folder / name).mkdir(parents=True)
        (folder / name / exam).symlink_to((repo / exam).resolve(), target_is_directory=True)
    (folder / MODELS).symlink_to(models.resolve(), target_is_directory=True)
    (folder / "out").mkdir()
    return folder


def stage_inputs(prepared: Path, heatmaps: Path | None) -> dict[str, Path]:
    """The input repos of one exam's datum: crops, centres and, for classify, heatmaps."""
    inputs = {CROP: prepared / CROP, EXTRACT_CENTERS: prepared / EXTRACT_CENTERS}
    if heatmaps is not None:
        inputs[GENERATE_HEATMAPS] = heatmaps
    return inputs


def run_batched(
    stage: str, roots: Sequence[Path], flags: Sequence[str], env: Mapping[str, str], log: Path
) -> BatchedRun:
    """One process with datum batching over `roots`, served as a worker serves a set."""
    calls: queue.Queue[NextDatumCall] = queue.Queue()
    marks: list[float] = []
    peak = None
    with WorkerApiServer(calls.put) as api, open(log, "ab") as output:
        argv = [sys.executable, "-m", f"stages.{stage}", *flags]
        output.write(f"+ {DATUM_BATCHING_ENV}=1 {' '.join(argv)}\n".encode())
        output.flush()
        start = time.perf_counter()
        process = subprocess.Popen(
            argv,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**env, DATUM_BATCHING_ENV: "1", PORT_ENV: str(api.port)},
            start_new_session=True,
        )
        try:
            for root in [*roots, None]:
                call = _next_call(calls, process, f"{stage} (batched)", log)
                marks.append(time.perf_counter() - start)
                if call.error:
                    raise CommandFailed(f"{stage} (batched): {call.error} (see {log})")
                if root is None:  # the set is done: the worker kills the code
                    peak = _peak_rss_mib(process.pid)
                    break
                call.reply([f"PFS_ROOT={root}"])
        finally:
            kill_group(process.pid)
            process.wait()
    return BatchedRun(
        seconds=marks[-1],
        ready_s=marks[0],
        datum_s=[after - before for before, after in itertools.pairwise(marks)],
        peak_rss_mib=peak,
    )


def _next_call(
    calls: queue.Queue[NextDatumCall], process: subprocess.Popen[bytes], what: str, log: Path
) -> NextDatumCall:
    deadline = time.monotonic() + DATUM_LIMIT_S
    while time.monotonic() < deadline:
        try:
            return calls.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                raise CommandFailed(
                    f"{what} exited ({process.returncode}) instead of asking for a datum "
                    f"(see {log})"
                ) from None
    raise CommandFailed(f"{what}: no NextDatum call in {DATUM_LIMIT_S:g} s (see {log})")


def _peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident memory so far (Linux), read before it is killed."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def compare_stage(
    stage: str,
    exams: Sequence[str],
    prepared: Path,
    heatmaps: Mapping[str, Path],
    models: Path,
    work: Path,
    flags: Sequence[str],
    env: Mapping[str, str],
) -> dict[str, Any]:
    """`stage` over the exams unbatched then batched: the figures, and whether they agree.

    `heatmaps[mode]`: the generate_heatmaps repo the datums of that mode read (classify).
    Each run's outputs stay in `<work>/<mode>/<exam>/out`.
    """
    log = work / "stage.log"
    roots: dict[str, list[Path]] = {}
    for mode in ("unbatched", "batched"):
        inputs = stage_inputs(prepared, heatmaps.get(mode))
        roots[mode] = [exam_root(work / mode / exam, exam, inputs, models) for exam in exams]
    print(f"bcd bench: warm workers: {stage}, {len(exams)} processes", file=sys.stderr)
    unbatched = [
        run_measured(stage_command(stage, root, flags), log, env=env) for root in roots["unbatched"]
    ]
    print(f"bcd bench: warm workers: {stage}, one batched process", file=sys.stderr)
    batched = run_batched(stage, roots["batched"], flags, env, log)
    written = [
        (files_of(one / "out"), files_of(warm / "out"))
        for one, warm in zip(roots["unbatched"], roots["batched"], strict=True)
    ]
    identical = all(alone == warm and bool(alone) for alone, warm in written)
    return figures(
        [run.seconds for run in unbatched],
        max(run.peak_rss_mib for run in unbatched),
        batched,
        identical,
    )


def figures(
    unbatched_s: list[float], unbatched_peak: float, batched: BatchedRun, identical: bool
) -> dict[str, Any]:
    """The comparison of one stage, from its measured times (at least 2 exams)."""
    exams = len(unbatched_s)
    steady = sum(batched.datum_s[1:]) / (exams - 1)
    startup = batched.ready_s + batched.datum_s[0] - steady
    unbatched = sum(unbatched_s)
    target = unbatched - (exams - 1) * startup
    return {
        "exams": exams,
        "unbatched_s": unbatched,
        "unbatched_s_per_exam": unbatched_s,
        "unbatched_peak_rss_mib": unbatched_peak,
        "batched_s": batched.seconds,
        "batched_ready_s": batched.ready_s,
        "batched_datum_s": batched.datum_s,
        "batched_peak_rss_mib": batched.peak_rss_mib,
        "startup_s": startup,
        "steady_s_per_exam": steady,
        "exams_per_hour": 3600 / steady,
        "target_s": target,
        "target_met": batched.seconds <= target * (1 + TARGET_ALLOWANCE),
        "identical": identical,
    }


def both_stages(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """generate_heatmaps and classify together, as one worker of each in a row."""
    steady = sum(row["steady_s_per_exam"] for row in rows.values())
    batched = sum(row["batched_s"] for row in rows.values())
    target = sum(row["target_s"] for row in rows.values())
    return {
        "startup_s": sum(row["startup_s"] for row in rows.values()),
        "steady_s_per_exam": steady,
        "exams_per_hour": 3600 / steady,
        "batched_s": batched,
        "unbatched_s": sum(row["unbatched_s"] for row in rows.values()),
        "target_s": target,
        "target_met": batched <= target * (1 + TARGET_ALLOWANCE),
        "identical": all(row["identical"] for row in rows.values()),
    }
