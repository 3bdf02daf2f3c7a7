"""How a stage process meets its datums: one run over a pfs root, or a warm worker's loop.

Each per-exam stage module has `parse_args(argv)`, `prepare(args) -> DatumRun` (its
set-up, done once: torch and the device for a torch stage) and `main(argv)`, which is
`stage_main` over the two. Without datum batching (`python3 -m stages.<name>`, `bcd
stage`, the 1.x specs) the stage runs once over one root (--pfs, else $PFS_ROOT, else
/pfs) and exits with its code.

With it (`transform.datum_batching`, pachd >= 2.5), the worker starts the stage once per
datum set and hands it datums through the worker API (docs: pachyderm-datums.md 5a). The
stage knows by BCD_DATUM_BATCHING=1 in its spec's env together with the API's port,
PPS_WORKER_GRPC_PORT (set in every Pachyderm worker, batched or not). It sets up once
(torch, the device; a torch stage keeps its networks from datum to datum and reloads them
only when the models input changes), then loops: NextDatum, carrying how the previous
datum ended -> the datum's run on its root -> NextDatum again. A datum ends as the process
would exit unbatched: 0 (data errors become error records) is a success; another exit
code, or an exception (anything but a data error, which the per-exam loop records: a
bug, out of memory) is the datum's error, and the worker restarts the stage and retries
the datum (datum_tries). Each exam's outputs are renamed into place whole before the
stage asks for the next datum, which is when the worker takes them: a stage killed
between datums loses nothing.

The datum's root is $PFS_ROOT of the environment in the NextDatum reply (/pfs on a
cluster, where it is unset), not whatever pachyderm_sdk's `batch_datum()` would load from
the fixed /pfs/.env: `bcd run` lays each worker's datums out under a root of its own. The
settings (device, precision, threads, epochs) come from the environment the process
started with, the job's, which is the same for every datum.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stages.harness import EXIT_MEANINGS, EXIT_UNUSABLE
from stages.io.pfs import pfs_root_of, resolve_pfs_root
from stages.table import DATUM_BATCHING_ENV

# One datum: its pfs root -> the exit code the stage would give on it unbatched.
DatumRun = Callable[[Path], int]
# pachyderm_sdk.constants.WORKER_PORT_ENV, written here so that unbatched runs need no client.
WORKER_PORT_ENV = "PPS_WORKER_GRPC_PORT"


def batching_requested(environment: Mapping[str, str]) -> bool:
    """Whether the spec batches this stage's datums and a worker API is there to serve them."""
    return environment.get(DATUM_BATCHING_ENV) == "1" and bool(environment.get(WORKER_PORT_ENV))


def stage_main(
    stage: str,
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    prepare: Callable[[argparse.Namespace], DatumRun],
    argv: list[str] | None,
) -> int:
    """A stage's entrypoint: its arguments, its set-up once, then its datum or datums.

    `prepare` raises ValueError for a set-up the stage cannot run with (its message says
    what to fix): exit 2 before any exam.
    """
    args = parse_args(argv)
    batched = batching_requested(os.environ)
    if batched and args.pfs:
        print(
            f"bcd {stage}: --pfs cannot be used under datum batching ({DATUM_BATCHING_ENV}=1 "
            f"and {WORKER_PORT_ENV} set): each datum comes with its own root; drop --pfs, "
            f"or unset {DATUM_BATCHING_ENV} to run over one folder",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE
    try:
        run = prepare(args)
    except ValueError as error:
        print(f"bcd {stage}: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    if not batched:
        return run(resolve_pfs_root(args.pfs))
    return serve_datums(stage, run)


def serve_datums(stage: str, run: DatumRun) -> int:
    """Run the worker's datums until it stops this process; returns only if NextDatum fails."""
    # Only a batched stage needs the client (and grpc under it).
    import grpc
    from pachyderm_sdk import Client

    worker = Client().worker
    print(f"bcd {stage}: set up once, serving datums (datum batching)", file=sys.stderr, flush=True)
    error = ""
    while True:
        try:
            reply = worker.next_datum(error=error)
        except grpc.RpcError as failure:
            print(
                f"bcd {stage}: NextDatum on the worker API (port {os.environ[WORKER_PORT_ENV]}) "
                f"failed: {failure.code()}: {failure.details()}; {DATUM_BATCHING_ENV}=1 asks "
                "the worker for datums, which it serves only to a spec with "
                "transform.datum_batching: true (pachd >= 2.5)",
                file=sys.stderr,
            )
            return EXIT_UNUSABLE
        error = datum_error(stage, run, pfs_root_of(reply_environment(reply.env)))


def reply_environment(lines: Sequence[str]) -> dict[str, str]:
    """A NextDatum reply's environment, sent as KEY=VALUE strings."""
    return {key: value for key, _, value in (line.partition("=") for line in lines)}


def datum_error(stage: str, run: DatumRun, root: Path) -> str:
    """Run one datum: "" when it succeeded, else the error to report for it."""
    try:
        code = run(root)
    except Exception as error:  # a genuine fault: the worker retries in a fresh process
        traceback.print_exc()
        return f"bcd {stage}: {type(error).__name__}: {error}"
    if code:
        return f"bcd {stage}: exit code {code}, {EXIT_MEANINGS[code]} (the datum's log says more)"
    return ""
