"""Bring an output folder back to a consistent state before a run starts.

After a crash (a SIGKILLed `bcd run`, a power cut, a full disk) this, in order: finishes
the publish the state log announced last, forgets datums whose output files are gone (so
they run again), deletes files no datum owns and empty folders, and compacts the log.
Afterwards every output repo holds exactly the files of the datums recorded in its state.
"""

from __future__ import annotations

from pathlib import Path

from bcd.runner.outputs import OutputRepo
from bcd.runner.state import PipelineState


def recover_pipeline(state_dir: Path, repo_dir: Path) -> tuple[PipelineState, list[str]]:
    """Load and repair one pipeline's state and repo; return it and the stray files removed."""
    state = PipelineState.load(state_dir)
    repo = OutputRepo(repo_dir, state.owned_files())
    if state.pending is not None:
        repo.roll_forward(state.pending.staged, state.pending.files)
    for datum_id, record in list(state.records.items()):
        if record.files and repo.missing(record.files):
            state.drop(datum_id)
            repo.remove(datum_id, record.files)
    removed = repo.sweep()
    state.compact()
    return state, removed


def recover_all(
    state_root: Path, out: Path, pipelines: list[str]
) -> tuple[dict[str, PipelineState], dict[str, list[str]]]:
    """Recover every pipeline with saved state or in the specs; states of the spec pipelines."""
    known = sorted(path.name for path in state_root.iterdir()) if state_root.is_dir() else []
    states: dict[str, PipelineState] = {}
    removed: dict[str, list[str]] = {}
    for name in dict.fromkeys([*known, *pipelines]):
        state, stray = recover_pipeline(state_root / name, out / name)
        if name in pipelines:
            states[name] = state
        if stray:
            removed[name] = stray
    return states, removed
