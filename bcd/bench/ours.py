"""Our stages on one exam, each in its own fresh child process, as a Pachyderm datum runs."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bcd.bench.processes import CommandFailed, Measured, run_measured
from stages.io.exam_files import CENTERS_JSON, load_exam
from stages.io.pfs import ERROR_RECORD
from stages.nets.patch_scoring import exam_patches
from stages.table import CLASSIFY, CROP, EXTRACT_CENTERS, GENERATE_HEATMAPS, SUMMARY, VISUALIZE

PREP_STAGES = (CROP, EXTRACT_CENTERS)
MODEL_STAGES = (GENERATE_HEATMAPS, CLASSIFY)
# The stages the NYU reference also has: "end to end" is their sum, for both.
STAGES = (*PREP_STAGES, *MODEL_STAGES)
# Ours only: measured for their memory and time, outside the comparison.
REPORT_STAGES = (VISUALIZE, SUMMARY)


@dataclass(frozen=True)
class PatchCounts:
    """One exam's heatmap patches: all of them, and the all-background ones."""

    total: int
    background: int
    scored: int  # distinct inputs the network ran: non-background + one per image with any


def stage_command(stage: str, pfs_root: Path, args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", f"stages.{stage}", "--pfs", str(pfs_root), *args]


def run_stage(
    stage: str,
    pfs_root: Path,
    log: Path,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    *,
    output_name: str | None = None,
) -> Measured:
    """Run one stage over every exam under `pfs_root`; its out/ becomes `<pfs>/<output_name>`.

    An exam error record counts as a failure: a benchmark of a failed exam means nothing.
    """
    out = pfs_root / "out"
    target = pfs_root / (output_name or stage)
    for stale in (out, target):
        if stale.exists():
            shutil.rmtree(stale)
    measured = run_measured(stage_command(stage, pfs_root, args), log, env=env)
    errors = sorted(out.glob(f"*/{ERROR_RECORD}"))
    if errors:
        raise CommandFailed(f"{stage}: error record {errors[0]} (see {log})")
    out.rename(target)
    return measured


def link_inputs(pfs_root: Path, inputs: Mapping[str, Path]) -> Path:
    """A fresh pfs root whose input repos are symlinks to existing folders."""
    pfs_root.mkdir(parents=True, exist_ok=True)
    for name, folder in inputs.items():
        (pfs_root / name).symlink_to(folder.resolve(), target_is_directory=True)
    return pfs_root


def patch_counts(pfs_root: Path, exam_id: str) -> PatchCounts:
    """Patches of one exam as generate_heatmaps cuts them, from its crop and centres."""
    exam = load_exam(pfs_root / EXTRACT_CENTERS / exam_id, CENTERS_JSON)
    total = background = scored = 0
    for image in exam_patches(pfs_root / CROP / exam_id, exam):
        empty = int(np.count_nonzero(image.background))
        total += len(image.corners)
        background += empty
        scored += len(image.corners) - empty + (1 if empty else 0)
    return PatchCounts(total, background, scored)
