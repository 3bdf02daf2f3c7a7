"""Stage `single_stage`: the whole DAG inside one datum (pipelines/single-stage/).

Reads  <pfs>/sample_data/<exam>/ and <pfs>/models/.
Writes <pfs>/out/<stage>/<exam>/... for each of the table's SINGLE_STAGE_STEPS (crop to
       visualize): the same files the multi-pipeline DAG writes to its repos.
Each stage runs in this process on a scratch /pfs tree whose inputs are the previous
stages' outputs; extra arguments go to every stage (e.g. --strict).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from stages.io.pfs import resolve_pfs_root
from stages.table import SINGLE_STAGE, SINGLE_STAGE_STEPS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bcd stage single_stage", description="All stages of one datum in sequence."
    )
    parser.add_argument("--pfs", metavar="DIR", help="default: $PFS_ROOT, else /pfs")
    known, stage_args = parser.parse_known_args(argv)
    pfs_root = resolve_pfs_root(known.pfs)
    out_root = pfs_root / "out"
    with tempfile.TemporaryDirectory(prefix="bcd-single-stage-") as scratch_dir:
        scratch = Path(scratch_dir)
        produced = {name: pfs_root / name for name in SINGLE_STAGE.inputs}
        for stage in SINGLE_STAGE_STEPS:
            stage_pfs = scratch / stage.name
            stage_pfs.mkdir()
            for name in stage.inputs:
                os.symlink(produced[name].resolve(), stage_pfs / name)
            # Every stage module has `main(argv) -> int`.
            code: int = importlib.import_module(f"stages.{stage.module}").main(
                ["--pfs", str(stage_pfs), *stage_args]
            )
            if code != 0:
                return code
            produced[stage.name] = stage_pfs / "out"
        out_root.mkdir(parents=True, exist_ok=True)
        for stage in SINGLE_STAGE_STEPS:
            if produced[stage.name].is_dir():
                shutil.move(produced[stage.name], out_root / stage.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
