"""`run_pipelines`: play every spec of a folder on local folders standing in for repos.

One run is one commit set: a single ID serves as job ID, output commit ID and input
commit IDs of every pipeline. Pipelines run upstream first; a pipeline downstream of one
whose job failed is not run (JOB_UNRUNNABLE). The output folder holds one repo per
pipeline, `<out>/<pipeline>/`, and the runner's own state, lock, scratch and datum logs
under `<out>/.bcd/`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bcd.runner.dag import input_folders, pipeline_order
from bcd.runner.errors import RunnerError, StorageError
from bcd.runner.execute import RunningProcesses, kill_leftovers
from bcd.runner.job import JobContext, run_job
from bcd.runner.lock import run_lock
from bcd.runner.outputs import MergeFault
from bcd.runner.recovery import recover_all
from bcd.runner.resources import available_cores, default_workers, visible_gpus
from bcd.runner.spec import PipelineSpec, load_spec_dir
from bcd.runner.summary import (
    FAILURE,
    NOT_RUN,
    SUCCESS,
    UNRUNNABLE,
    JobSummary,
    RunSummary,
    find_exam_errors,
)
from stages.table import MODELS, SAMPLE_DATA

STATE_DIR = ".bcd"


@dataclass
class RunOptions:
    """Everything `bcd run` takes; the defaults are the CLI's."""

    pipelines: Path = Path("pipelines")
    data: Path = Path(SAMPLE_DATA)
    models: Path = Path(MODELS)
    out: Path = Path("output")
    repos: Mapping[str, Path] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    workers: int = field(default_factory=default_workers)
    reprocess: bool = False
    progress: bool = True


def run_pipelines(options: RunOptions) -> RunSummary:
    """Run every pipeline once; RunnerError (LockBusy, SpecError...) when it cannot start."""
    if options.workers < 1:
        raise RunnerError("--workers must be at least 1")
    specs = load_spec_dir(options.pipelines)
    _check_batching_support(specs)
    given = {SAMPLE_DATA: options.data, MODELS: options.models, **options.repos}
    order = pipeline_order(specs, given, set(options.repos))
    out = options.out.resolve()
    folders = input_folders(specs, given, out)
    state_root = out / STATE_DIR
    try:
        state_root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot use {out} as the output folder: {error}") from error

    with run_lock(state_root):
        return _run_locked(options, order, folders, out, state_root)


def _check_batching_support(specs: list[PipelineSpec]) -> None:
    """Datum batching is played with the official client's worker API messages."""
    batched = [spec.name for spec in specs if spec.transform.datum_batching]
    if batched and importlib.util.find_spec("pachyderm_sdk") is None:
        raise RunnerError(
            f"pipeline {batched[0]} uses transform.datum_batching, which bcd run serves with "
            "the Pachyderm Python client: pip install pachyderm-sdk (make install does)"
        )


def _run_locked(
    options: RunOptions,
    order: list[PipelineSpec],
    folders: Mapping[str, Path],
    out: Path,
    state_root: Path,
) -> RunSummary:
    summary = RunSummary(run_id=uuid.uuid4().hex)
    scratch_root = state_root / "scratch"
    kill_leftovers(scratch_root)
    names = [spec.name for spec in order]
    try:
        states, removed = recover_all(state_root / "state", out, names)
        shutil.rmtree(scratch_root, ignore_errors=True)
    except OSError as error:
        raise StorageError(f"cannot repair the output folder {out}: {error}") from error
    for name, files in removed.items():
        print(
            f"bcd run: removed {len(files)} file(s) from {out / name} that no datum owns "
            "(left by an interrupted run, or not made by bcd run)",
            file=sys.stderr,
        )
    processes = RunningProcesses()
    ctx = JobContext(
        run_id=summary.run_id,
        out=out,
        scratch=scratch_root / summary.run_id,
        logs=state_root / "logs",
        folders=folders,
        base_env=dict(os.environ),
        env_overrides=dict(options.env),
        workers=options.workers,
        cores=available_cores(),
        gpus=visible_gpus(os.environ),
        reprocess=options.reprocess,
        progress=options.progress,
        fault=MergeFault.from_env(os.environ),
        processes=processes,
    )
    not_succeeded: set[str] = set()
    try:
        for spec in order:
            job = JobSummary(spec.name)
            summary.jobs.append(job)
            if summary.error is not None:
                job.status, job.reason = NOT_RUN, "the run stopped earlier"
                continue
            blocked = [repo for repo in spec.input_repos() if repo in not_succeeded]
            if blocked:
                job.status = UNRUNNABLE
                job.reason = f"upstream pipeline {blocked[0]} did not succeed"
            else:
                try:
                    run_job(spec, states[spec.name], ctx, job, set(names))
                except StorageError as error:
                    job.status, job.reason = FAILURE, str(error)
                    summary.error = str(error)
            if job.status != SUCCESS:
                not_succeeded.add(spec.name)
    except BaseException:
        processes.stop()
        raise
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    summary.exam_errors = find_exam_errors([out / name for name in names], out)
    return summary
