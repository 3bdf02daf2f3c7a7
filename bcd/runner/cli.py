"""`bcd run`: the command line of the local runner.

Exit status: 0 when every job succeeded and no exam has an error record; 1 when a job
failed, a pipeline was unrunnable, an exam has an error record, or the run had to stop
(disk full, read-only output); 2 when the run could not start (bad spec or option,
missing repo folder, another run holding the output folder); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bcd.runner.errors import RunnerError
from bcd.runner.resources import default_workers
from bcd.runner.run import RunOptions, run_pipelines

EPILOG = """\
Each pipeline's output repo is <out>/<pipeline>/ and feeds downstream pipelines. The runner
keeps its state, lock, scratch and datum logs under <out>/.bcd/. A re-run skips datums whose
inputs are unchanged; as in Pachyderm, a changed image or cmd does NOT count as a change:
use --reprocess after changing the code a pipeline runs.
"""


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bcd run",
        description="Run the Pachyderm pipeline specs locally, with Pachyderm's datum semantics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("sample_data"),
        metavar="DIR",
        help="folder standing in for the sample_data repo (default: sample_data/)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=Path("models"),
        metavar="DIR",
        help="folder standing in for the models repo (default: models/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("output"),
        metavar="DIR",
        help="output folder: one repo per pipeline (default: output/)",
    )
    parser.add_argument(
        "--pipelines",
        type=Path,
        default=Path("pipelines"),
        metavar="DIR",
        help="folder whose *.json files are the specs (default: pipelines/)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=default_workers(),
        metavar="N",
        help="datums run in parallel; cores are divided among them (default 2, 1 on one core)",
    )
    parser.add_argument(
        "--repo",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a further input repo (repeatable)",
    )
    parser.add_argument(
        "--env",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in every datum's environment, over the spec (repeatable)",
    )
    parser.add_argument(
        "--reprocess",
        action="store_true",
        help="process every datum again (new salt), as `pachctl update pipeline --reprocess`",
    )
    parser.add_argument(
        "--summary-json", type=Path, metavar="FILE", help="also write the run summary as JSON"
    )
    return parser


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = RunOptions(
        pipelines=args.pipelines,
        data=args.data,
        models=args.models,
        out=args.out,
        repos={name: Path(folder) for name, folder in args.repo},
        env=dict(args.env),
        workers=args.workers,
        reprocess=args.reprocess,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_pipelines(options)
    except RunnerError as error:
        print(f"bcd run: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bcd run: interrupted; the next run resumes where this one stopped", file=sys.stderr)
        return 130
    print(summary.format_text())
    if args.summary_json:
        summary.write_json(args.summary_json)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
