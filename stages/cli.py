"""`bcd`: one command for the stages, the local runner, ingest, models and benchmarks."""

from __future__ import annotations

import importlib
import sys

STAGES = (
    "crop",
    "extract_centers",
    "generate_heatmaps",
    "classify",
    "visualize",
    "summary",
    "single_stage",
)
# Sub-command -> module whose main(argv) -> int implements it.
COMMANDS = {
    "run": "stages.runner.cli",
    "ingest": "stages.ingest.cli",
    "models": "stages.nets.cli",
    "bench": "stages.bench",
}

USAGE = f"""usage: bcd COMMAND [ARGS...]

commands:
  stage NAME [ARGS]   run one stage by hand ({", ".join(STAGES)})
  run [ARGS]          run the pipeline specs locally with Pachyderm's datum semantics
  ingest SRC DST      convert DICOM / NYU / PNG-folder input into the exam format
  models [ARGS]       check checkpoints, write demo weights
  bench [ARGS]        measure speed and memory

`bcd COMMAND --help` describes each one."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the sub-command's module; only that module (and its deps) is imported."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "stage":
        if not rest or rest[0] not in STAGES:
            print(f"bcd stage: name one of {', '.join(STAGES)}", file=sys.stderr)
            return 2
        module = importlib.import_module(f"stages.{rest[0]}")
        return module.main(rest[1:])
    if command not in COMMANDS:
        print(f"bcd: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
