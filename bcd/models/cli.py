"""`bcd models`: download the published checkpoints, write demo weights, or check a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bcd.models.download import BASE_URL, download_published
from stages.nets.provenance import MODEL_FILES, UNVERIFIED_WARNING, file_provenance


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bcd models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="write seeded stand-in weights (not the published model) into DIR"
    )
    demo.add_argument("dir", type=Path)
    demo.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    verify = commands.add_parser(
        "verify",
        help="print each checkpoint's git blob id and sha256, say whether it is the "
        "published file, and check that it loads into its model",
    )
    verify.add_argument("dir", type=Path)
    download = commands.add_parser(
        "download", help="fetch the published NYU checkpoints into DIR, checked by git blob id"
    )
    download.add_argument("dir", type=Path)
    download.add_argument("--base-url", default=BASE_URL, help="folder URL holding the files")
    download.add_argument("--timeout", type=float, default=60.0, help="seconds per connection")
    return parser


def _demo(directory: Path, seed: int) -> int:
    from bcd.models.demo_weights import write_demo_weights

    for path in write_demo_weights(directory, seed):
        print(f"wrote {path}")
    print(f"{UNVERIFIED_WARNING} (seeded stand-ins, seed {seed})")
    return 0


def _verify(directory: Path) -> int:
    from stages.nets.checkpoints import CheckpointError, load_model_file

    failed = unverified = False
    for name in MODEL_FILES:
        path = directory / name
        if not path.is_file():
            print(f"{name}: missing", file=sys.stderr)
            failed = True
            continue
        record = file_provenance(path)
        status = "verified" if record["verified"] else "unverified"
        unverified |= not record["verified"]
        print(f"{name}  blob {record['blob_id']}  sha256 {record['sha256']}  {status}")
        try:
            load_model_file(path)
        except CheckpointError as error:
            print(f"{name}: {error}", file=sys.stderr)
            failed = True
    if unverified:
        print(UNVERIFIED_WARNING)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bcd models`; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args.dir, args.seed)
    if args.command == "download":
        return download_published(args.dir, args.base_url, args.timeout)
    return _verify(args.dir)
