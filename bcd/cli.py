"""`bcd`: one command for the stages, the local runner, ingest, models and benchmarks."""

from __future__ import annotations

import importlib
import sys

from stages.table import ALL_STAGES

STAGE_MODULES = tuple(stage.module for stage in ALL_STAGES)

USAGE = f"""usage: bcd COMMAND [ARGS...]

commands:
  stage NAME [ARGS]   run one stage by hand ({", ".join(STAGE_MODULES)})
  run [ARGS]          run the pipeline specs locally with Pachyderm's datum semantics
  ingest SRC DST      convert DICOM / NYU / PNG-folder input into the exam format
  models [ARGS]       download or check checkpoints, write demo weights
  bench [ARGS]        measure speed and memory

`bcd COMMAND --help` describes each one."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the sub-command; only its module (and its dependencies) is imported."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "stage":
        if not rest or rest[0] not in STAGE_MODULES:
            print(f"bcd stage: name one of {', '.join(STAGE_MODULES)}", file=sys.stderr)
            return 2
        # The stage table names each entrypoint module; torch loads only for a torch stage.
        code: int = importlib.import_module(f"stages.{rest[0]}").main(rest[1:])
        return code
    if command == "run":
        from bcd.runner.cli import main as run_main

        return run_main(rest)
    if command == "ingest":
        from bcd.ingest.cli import main as ingest_main

        return ingest_main(rest)
    if command == "models":
        from bcd.models.cli import main as models_main

        return models_main(rest)
    if command == "bench":
        from bcd.bench.cli import main as bench_main

        return bench_main(rest)
    print(f"bcd: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
