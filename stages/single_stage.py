"""Stage `single_stage`: the whole DAG inside one datum (pipelines/single-stage/).

Reads  <pfs>/sample_data/<exam>/ and <pfs>/models/.
Writes <pfs>/out/<stage>/<exam>/... for each of the table's SINGLE_STAGE_STEPS (crop to
       visualize): the same files the multi-pipeline DAG writes to its repos.
Each stage runs in this process on a scratch /pfs tree whose inputs are the previous
stages' outputs; extra arguments go to every stage (e.g. --strict). Every stage is set up
once (torch, for the torch stages), so that a batched worker keeps them warm.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from stages.batching import DatumRun, stage_main
from stages.table import SINGLE_STAGE, SINGLE_STAGE_STEPS, Stage


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bcd stage single_stage", description="All stages of one datum in sequence."
    )
    parser.add_argument("--pfs", metavar="DIR", help="default: $PFS_ROOT, else /pfs")
    args, stage_args = parser.parse_known_args(argv)
    args.stage_args = stage_args
    return args


def prepare(args: argparse.Namespace) -> DatumRun:
    """Each step's own set-up, with the extra arguments; the run chains them on one root."""
    steps: list[tuple[Stage, DatumRun]] = []
    for stage in SINGLE_STAGE_STEPS:
        # Every per-exam stage module has `parse_args(argv)` and `prepare(args) -> DatumRun`.
        module = importlib.import_module(f"stages.{stage.module}")
        steps.append((stage, module.prepare(module.parse_args(args.stage_args))))

    def run(pfs_root: Path) -> int:
        out_root = pfs_root / "out"
        with tempfile.TemporaryDirectory(prefix="bcd-single-stage-") as scratch_dir:
            scratch = Path(scratch_dir)
            produced = {name: pfs_root / name for name in SINGLE_STAGE.inputs}
            for stage, step in steps:
                stage_pfs = scratch / stage.name
                stage_pfs.mkdir()
                for name in stage.inputs:
                    os.symlink(produced[name].resolve(), stage_pfs / name)
                code = step(stage_pfs)
                if code != 0:
                    return code
                produced[stage.name] = stage_pfs / "out"
            out_root.mkdir(parents=True, exist_ok=True)
            for stage, _step in steps:
                if produced[stage.name].is_dir():
                    shutil.move(produced[stage.name], out_root / stage.name)
        return 0

    return run


def main(argv: list[str] | None = None) -> int:
    return stage_main(SINGLE_STAGE.module, parse_args, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
