"""`bcd ingest SRC DST`: the Pachyderm example's sample_data, the NYU layout, DICOM files or
a PNG folder into the exam format.

Each exam is written whole into DST/<exam>/ (exam.json + 16-bit PNGs) or not at all;
the report goes beside DST. Exit status: 0 when at least one exam was written, 1 when
none could be, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from bcd.ingest import exams, ids, pachyderm_example, report, sources
from bcd.ingest.records import Scan, skipped
from bcd.ingest.writer import write_exam
from stages.io.exam_files import EXAMPLE_EXAM_LIST
from stages.io.pfs import remove_stale_staging

PROG = "bcd ingest"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert the sample_data of Pachyderm's breast-cancer-detection example "
        "(exam folders with gen_exam_list_before_cropping.pkl), the NYU reference layout "
        "(exam list pickle + PNGs), DICOM files or a folder of <exam>_<L|R>_<CC|MLO>.png "
        "files into the exam format "
        "(DST/<exam>/exam.json + 16-bit PNGs). See docs/ingest.md.",
    )
    parser.add_argument("src", metavar="SRC", help="folder (or exam list .pkl) to read")
    parser.add_argument("dst", metavar="DST", help="folder to write exams into")
    parser.add_argument(
        "--source",
        choices=("auto", *sources.SOURCE_TYPES),
        default="auto",
        help="what SRC holds (default: detected: the Pachyderm example's exam folders, else "
        "an NYU exam list, else DICOM, else PNGs)",
    )
    parser.add_argument(
        "--group-by",
        choices=("study", "patient", "folder"),
        default="study",
        help="DICOM: one exam per StudyInstanceUID (default), per PatientID and StudyDate, "
        "or per folder",
    )
    parser.add_argument(
        "--salt", help=f"salt for pseudonymous exam ids (default: ${ids.SALT_ENV}, else <DST>.salt)"
    )
    parser.add_argument(
        "--keep-ids",
        action="store_true",
        help="name exams after their grouping key (study UID, patient, folder, exam name, "
        "the example's exam folder) "
        "instead of a pseudonym; may put patient identifiers into DST",
    )
    parser.add_argument(
        "--no-voi",
        action="store_true",
        help="DICOM: ignore the VOI LUT / window the file carries and keep the stored values",
    )
    parser.add_argument("--report", help="report path (default: <DST>.ingest.json)")
    parser.add_argument(
        "--quiet", action="store_true", help="print the summary only, not one line per file"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    report_path = Path(args.report) if args.report else report.default_path(dst)
    problem = _check_paths(src, dst, report_path)
    if problem:
        parser.error(problem)

    files = sources.source_files(src)
    source_type = sources.detect(src, files) if args.source == "auto" else args.source
    if source_type == "dicom" and importlib.util.find_spec("pydicom") is None:
        print(
            f"{PROG}: {src} holds DICOM files, which need pydicom: install the dicom extra, "
            "pip install 'breast-cancer-pachyderm[dicom]' (make install does)",
            file=sys.stderr,
        )
        return 2
    scan = _scan(source_type, src, files, args)
    salt, salt_from = (None, None) if args.keep_ids else ids.resolve_salt(args.salt, dst)
    exam_ids, refused = ids.assign_ids(sorted({c.key for c in scan.candidates}), salt=salt)
    plans = exams.plan_exams(scan.candidates, exam_ids, refused)

    dst.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(dst)
    files_seen = [*scan.used, *scan.skipped, *plans.skipped_files]
    written: list[dict[str, Any]] = []
    skipped_exams: list[tuple[str | None, str]] = [
        *((None, reason) for reason in scan.refused_exams.values())
    ]
    skipped_exams += plans.skipped_exams
    for plan in plans.exams:
        outcome = write_exam(dst, plan, scan.given_flips.get(plan.key))
        files_seen += outcome.files
        if outcome.exam is not None:
            written.append(outcome.exam)
        else:
            skipped_exams.append((plan.exam_id, outcome.skip_reason or "not written"))

    settings = {
        "source": str(src),
        "source_type": source_type,
        "destination": str(dst),
        "report": str(report_path),
        "group_by": args.group_by if source_type == "dicom" else None,
        "exam_ids": "kept (--keep-ids)"
        if args.keep_ids
        else f"pseudonymous, salt from {salt_from}",
        "voi": "ignored (--no-voi)" if args.no_voi else "applied where the file carries one",
    }
    result = report.build(
        settings=settings, files=files_seen, exams=written, skipped_exams=skipped_exams
    )
    report.save(report_path, result)
    report.print_table(result, sys.stdout, files=not args.quiet)
    if not written:
        print(f"{PROG}: nothing could be ingested; see the reasons above", file=sys.stderr)
        return 1
    return 0


def _scan(source_type: str | None, src: Path, files: list[Path], args: argparse.Namespace) -> Scan:
    root = src if src.is_dir() else src.parent
    if source_type == pachyderm_example.SOURCE:
        folders = pachyderm_example.find_exam_folders(src)
        if not folders:
            reason = f"no exam folder with {EXAMPLE_EXAM_LIST} found"
            return Scan(source_type, skipped=[skipped(_rel(root, p), reason) for p in files])
        return pachyderm_example.scan(root, folders, files)
    if source_type == "nyu":
        from bcd.ingest import nyu

        exam_list = nyu.find_exam_list(src)
        if exam_list is None:
            return Scan(
                "nyu", skipped=[skipped(_rel(root, p), "no exam list found") for p in files]
            )
        return nyu.scan(root, exam_list, files)
    if source_type == "dicom":
        from bcd.ingest import dicom  # pydicom is only needed here

        return dicom.scan(root, files, args.group_by, apply_voi=not args.no_voi)
    if source_type == "png":
        from bcd.ingest import pngs

        return pngs.scan(root, files)
    reason = "SRC holds no example exam folder, NYU exam list, DICOM file or PNG"
    return Scan("none", skipped=[skipped(_rel(root, path), reason) for path in files])


def _check_paths(src: Path, dst: Path, report_path: Path) -> str | None:
    """Why these paths cannot work, or None."""
    if not src.exists():
        return f"SRC {src} does not exist"
    source_root = (src if src.is_dir() else src.parent).resolve()
    destination = dst.resolve()
    if destination == source_root or source_root in destination.parents:
        return f"DST {dst} is inside SRC {src}: a later ingest would read its own output"
    if destination.exists() and not destination.is_dir():
        return f"DST {dst} exists and is not a folder"
    target = report_path.resolve()
    if target == destination or destination in target.parents:
        return f"the report {report_path} must not be inside DST: everything in DST is a datum"
    return None


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


if __name__ == "__main__":
    sys.exit(main())
