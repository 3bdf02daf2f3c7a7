"""One pipeline's job: plan which datums to skip, run the others, publish, record.

Plan (Pachyderm's incremental rules): a datum is skipped when its ID and hash match a
record that was processed by a job that did not fail; every other datum runs. Outputs of
datums whose inputs disappeared, and old outputs of datums about to run again, are
deleted first. Datums run in parallel (see `resources`), each in a process of its own, or
under datum batching in datum sets, each set served to one process (see `batch`); as each
datum ends the main thread records it and, when it succeeded, checks its paths against the
repo (two datums may not write the same path) and publishes it. A failed datum fails the
job, the other datums still run and keep their outputs. Datums run with err_cmd that end
RECOVERED publish nothing and do not fail the job. Each job has a progress bar, which also
shows what each running datum is doing (see `progress`).
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Never, TypedDict

from tqdm import tqdm

from bcd.runner.datums import Datum, build_datums, datum_hash
from bcd.runner.errors import RunnerError, StorageError
from bcd.runner.execute import DatumJob, DatumResult, RunningProcesses, log_line, run_datum
from bcd.runner.fileset import RepoFiles
from bcd.runner.outputs import MergeFault, OutputRepo
from bcd.runner.progress import ProgressBoard
from bcd.runner.resources import Slots, plan_slots, slot_env
from bcd.runner.spec import PipelineSpec
from bcd.runner.state import FAILED, PROCESSED, RECOVERED, DatumRecord, PipelineState
from bcd.runner.summary import FAILURE, DatumFailure, JobSummary


class _Quiet(TypedDict, total=False):
    """tqdm's `disable`, passed only when the bar is turned off."""

    disable: bool


@dataclass
class JobContext:
    """What all jobs of one run share."""

    run_id: str
    out: Path
    scratch: Path
    logs: Path
    folders: Mapping[str, Path]
    base_env: Mapping[str, str]
    env_overrides: Mapping[str, str]
    workers: int
    cores: int
    gpus: list[str]
    reprocess: bool
    progress: bool
    fault: MergeFault
    processes: RunningProcesses
    static_files: dict[str, RepoFiles] = field(default_factory=dict)

    def repo_files(self, repo: str, pipelines: set[str]) -> RepoFiles:
        """A repo's files; given folders are hashed once per run, pipeline outputs per job."""
        if repo in pipelines:
            return RepoFiles(self.folders[repo])
        if repo not in self.static_files:
            self.static_files[repo] = RepoFiles(self.folders[repo])
        return self.static_files[repo]


def job_env(spec: PipelineSpec, base_env: Mapping[str, str]) -> dict[str, str]:
    """The pod-level environment: ours, then transform.env, with this interpreter first on PATH.

    Specs run `python3 -m stages.x`; putting the running interpreter's bin folder first
    makes that the same Python (and venv) as `bcd run`.
    """
    env = dict(base_env)
    env.update(spec.transform.env)
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", os.defpath)
    env["PPS_PIPELINE_NAME"] = spec.name
    env["PPS_PROJECT_NAME"] = spec.project
    return env


def _describe(datum: Datum) -> list[str]:
    return [f"{item.name}:{item.path}" for item in datum.inputs]


def run_job(
    spec: PipelineSpec,
    state: PipelineState,
    ctx: JobContext,
    summary: JobSummary,
    pipelines: set[str],
) -> None:
    """Run one job, filling `summary`. Raises StorageError when outputs cannot be written."""
    start = time.monotonic()
    try:
        _run_job(spec, state, ctx, summary, pipelines, start)
    except OSError as error:
        raise StorageError(
            f"cannot write the outputs of {spec.name}: {error}. Published datums are "
            "complete; fix the cause and run again to resume."
        ) from error
    finally:
        summary.seconds = round(time.monotonic() - start, 3)


def _run_job(
    spec: PipelineSpec,
    state: PipelineState,
    ctx: JobContext,
    summary: JobSummary,
    pipelines: set[str],
    start: float,
) -> None:
    repo = OutputRepo(ctx.out / spec.name, state.owned_files(), ctx.fault)
    repo.root.mkdir(parents=True, exist_ok=True)
    try:
        datums = build_datums(
            spec.input, {name: ctx.repo_files(name, pipelines) for name in spec.input_repos()}
        )
    except (RunnerError, OSError) as error:
        summary.status, summary.reason = FAILURE, f"cannot list the datums: {error}"
        return

    if ctx.reprocess or state.salt is None:
        salt = spec.salt if state.salt is None and spec.salt else uuid.uuid4().hex
    else:
        salt = state.salt
    hashes = {datum.id: datum_hash(datum, salt) for datum in datums}
    todo = [
        datum
        for datum in datums
        if not (spec.skip_unchanged and state.skippable(datum.id, hashes[datum.id]))
    ]
    summary.skipped = len(datums) - len(todo)
    vanished = [datum_id for datum_id in state.records if datum_id not in hashes]

    state.start_job(ctx.run_id, salt)
    for datum_id in vanished + [datum.id for datum in todo if datum.id in state.records]:
        files = state.records[datum_id].files
        state.drop(datum_id)
        repo.remove(datum_id, files)
    summary.deleted = len(vanished)

    job = DatumJob(
        transform=spec.transform,
        tries=spec.datum_tries,
        timeout=spec.datum_timeout,
        env=job_env(spec, ctx.base_env),
        overrides=ctx.env_overrides,
        job_id=ctx.run_id,
        deadline=start + spec.job_timeout if spec.job_timeout else None,
    )
    # Without an explicit `disable`, tqdm honours TQDM_DISABLE and friends.
    quiet: _Quiet = {} if ctx.progress else {"disable": True}
    with tqdm(
        total=len(datums), desc=spec.name, unit="datum", file=sys.stderr, **quiet
    ) as progress:
        progress.update(summary.skipped)
        recorder = _Recorder(spec, hashes, state, repo, ctx, summary, progress)
        conflict = _run_datums(spec, todo, job, ctx, recorder, progress)
    ok = summary.failed == 0 and conflict is None
    if not ok:
        summary.status = FAILURE
        summary.reason = conflict or _failure_reason(summary)
    state.end_job(ctx.run_id, ok)


def _failure_reason(summary: JobSummary) -> str:
    first = summary.failures[0]
    return f"{summary.failed} datum(s) failed; first: datum {first.datum}: {first.reason}"


# Before a datum's last progress record, in its log.
LAST_PROGRESS = "last progress: "

# Runs one task (a datum, or a datum set under batching) on a slot, reporting each datum.
_SlotTask = Callable[[int, list[Datum], Callable[[Datum, DatumResult], None]], None]


def _run_datums(
    spec: PipelineSpec,
    todo: list[Datum],
    job: DatumJob,
    ctx: JobContext,
    record: Callable[[Datum, DatumResult], str | None],
    bar: tqdm[Never],
) -> str | None:
    """Run `todo` on the slots; `record(datum, result)` runs in this thread as each ends.

    What each running datum is doing goes on `bar` (see `progress`).
    """
    if not todo:
        return None
    with ExitStack() as stack:
        if spec.transform.datum_batching:
            tasks, slots, run_task = _batched(spec, todo, job, ctx, stack, bar)
        else:
            tasks = [[datum] for datum in todo]
            slots = _slots(spec, ctx, len(tasks))
            board = stack.enter_context(_board(spec, ctx, bar))
            run_task = _one_by_one(spec, job, ctx, slots, board)
        return _run_tasks(tasks, slots, run_task, ctx, record)


def _board(spec: PipelineSpec, ctx: JobContext, bar: tqdm[Never]) -> ProgressBoard:
    folder = ctx.scratch / spec.name / "progress"
    return ProgressBoard(bar, spec.name, folder, show=ctx.progress)


def _slots(spec: PipelineSpec, ctx: JobContext, tasks: int) -> Slots:
    return plan_slots(ctx.workers, spec.gpus_per_datum, ctx.gpus, ctx.cores, tasks)


def _one_by_one(
    spec: PipelineSpec, job: DatumJob, ctx: JobContext, slots: Slots, board: ProgressBoard
) -> _SlotTask:
    """Each datum in a process of its own."""

    def run_task(
        slot: int, datums: list[Datum], report: Callable[[Datum, DatumResult], None]
    ) -> None:
        for datum in datums:
            log = ctx.logs / spec.name / f"{datum.id}.log"
            with board.running(slot):
                result = run_datum(
                    job,
                    datum,
                    ctx.scratch / spec.name / datum.id,
                    log,
                    ctx.processes,
                    {**slot_env(slots, slots.gpu_sets[slot]), **board.env(slot)},
                )
                last = board.datum_ended(slot)
            if last is not None:
                with open(log, "ab") as output:
                    log_line(output, f"{LAST_PROGRESS}{last}")
            report(datum, result)

    return run_task


def _batched(
    spec: PipelineSpec,
    todo: list[Datum],
    job: DatumJob,
    ctx: JobContext,
    stack: ExitStack,
    bar: tqdm[Never],
) -> tuple[list[list[Datum]], Slots, _SlotTask]:
    """Datum sets, each served to one process by a worker that keeps its pfs root."""
    # Imported only here: it needs pachyderm-sdk, which run_pipelines checked for.
    from bcd.runner.batch import datum_sets, open_worker, run_datum_set

    sets = datum_sets(todo, spec.datum_set_spec, _slots(spec, ctx, len(todo)).parallel)
    slots = _slots(spec, ctx, len(sets))
    scratch = ctx.scratch / spec.name
    board = stack.enter_context(_board(spec, ctx, bar))
    workers = [
        stack.enter_context(
            open_worker(
                scratch / f"worker-{slot}" / "pfs",
                scratch,
                {**slot_env(slots, gpu_set), **board.env(slot)},
                ctx.logs / spec.name / f"worker-{slot}.log",
            )
        )
        for slot, gpu_set in enumerate(slots.gpu_sets)
    ]

    def run_task(
        slot: int, datums: list[Datum], report: Callable[[Datum, DatumResult], None]
    ) -> None:
        worker = workers[slot]

        def ended(datum: Datum, result: DatumResult) -> None:
            # The command waits in NextDatum: nothing writes the file until the next reply.
            last = board.datum_ended(slot)
            if last is not None:
                log_line(worker.log, f"{LAST_PROGRESS}{last}")
            report(datum, result)

        with board.running(slot):
            run_datum_set(job, datums, worker, ctx.processes, ended)

    return sets, slots, run_task


def _run_tasks(
    tasks: list[list[Datum]],
    slots: Slots,
    run_task: _SlotTask,
    ctx: JobContext,
    record: Callable[[Datum, DatumResult], str | None],
) -> str | None:
    """Run the tasks on free slots; record each datum in this thread as it ends."""
    free: queue.Queue[int] = queue.Queue()
    for slot in range(slots.parallel):
        free.put(slot)
    # Datum results, then each task's own future once it has reported all of its datums.
    ended: queue.Queue[tuple[Datum, DatumResult] | Future[None]] = queue.Queue()

    def task(datums: list[Datum]) -> None:
        slot = free.get()
        try:
            run_task(slot, datums, lambda datum, result: ended.put((datum, result)))
        finally:
            free.put(slot)

    first_conflict = None
    with ThreadPoolExecutor(max_workers=slots.parallel) as pool:
        futures = [pool.submit(task, datums) for datums in tasks]
        for future in futures:
            future.add_done_callback(ended.put)
        try:
            running = len(futures)
            while running:
                item = ended.get()
                if isinstance(item, Future):
                    item.result()  # a task that raised (a bug, a full disk) stops the job
                    running -= 1
                else:
                    conflict = record(*item)
                    first_conflict = first_conflict or conflict
        except BaseException:
            ctx.processes.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return first_conflict


@dataclass
class _Recorder:
    """Records each finished datum and publishes its outputs, in the main thread."""

    spec: PipelineSpec
    hashes: Mapping[str, str]
    state: PipelineState
    repo: OutputRepo
    ctx: JobContext
    summary: JobSummary
    progress: tqdm[Never]  # a bar without an iterable, advanced by update()

    def __call__(self, datum: Datum, result: DatumResult) -> str | None:
        """Record one datum; return the path conflict that kept it out, if any."""
        conflict = None
        if result.state == PROCESSED:
            conflict = self.repo.conflict(datum.id, result.files)
            if conflict is None:
                self._publish(datum, result)
            else:
                self._failed(datum, result, conflict, conflict)
        elif result.state == RECOVERED:
            self._put(datum, RECOVERED)
            self.summary.recovered += 1
        else:
            self._failed(
                datum,
                result,
                result.reason,
                f"datum {datum.id[:12]} [{', '.join(_describe(datum))}] failed after "
                f"{result.attempts} attempt(s): {result.reason} (log: {result.log})\n"
                f"{result.log_tail}",
            )
        shutil.rmtree(self.ctx.scratch / self.spec.name / datum.id, ignore_errors=True)
        self.progress.update(1)
        return conflict

    def _put(self, datum: Datum, state: str) -> None:
        self.state.put(datum.id, DatumRecord(self.hashes[datum.id], state, self.ctx.run_id))

    def _publish(self, datum: Datum, result: DatumResult) -> None:
        record = DatumRecord(self.hashes[datum.id], PROCESSED, self.ctx.run_id, result.files)
        # run_datum sets out_dir on every PROCESSED result, the only ones published.
        assert result.out_dir is not None
        self.state.put(datum.id, record, staged=result.out_dir)
        try:
            self.repo.publish(datum.id, result.out_dir, result.files)
        except BaseException:
            self.state.drop(datum.id)
            raise
        self.summary.processed += 1

    def _failed(self, datum: Datum, result: DatumResult, reason: str, message: str) -> None:
        self._put(datum, FAILED)
        self.summary.failed += 1
        log = str(result.log) if result.log else None
        self.summary.failures.append(DatumFailure(datum.id, _describe(datum), reason, log))
        self.progress.write(f"{self.spec.name}: {message}", file=sys.stderr)
