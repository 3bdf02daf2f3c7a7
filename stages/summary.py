"""summary stage: one table of every exam's predictions, the failed exams, an index page.

Inputs classify and visualize, each with glob "/" (one datum: the whole run). Writes
out/predictions.csv, out/failed_exams.csv, out/failed_exams.json and out/index.html.
"""

from __future__ import annotations

import sys

from stages.harness import stage_parser
from stages.io.pfs import atomic_write_bytes, resolve_pfs_root, write_json
from stages.report.collect import collect_run
from stages.report.html import summary_index_html
from stages.report.tables import failures_csv, predictions_csv
from stages.table import CLASSIFY, SUMMARY, VISUALIZE


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(SUMMARY, "Predictions of all exams, failed exams and an index page.")
    args = parser.parse_args(argv)
    pfs_root = resolve_pfs_root(args.pfs)
    run = collect_run(pfs_root / CLASSIFY, pfs_root / VISUALIZE, stage=SUMMARY)
    out = pfs_root / "out"
    atomic_write_bytes(out / "predictions.csv", predictions_csv(run.predictions).encode())
    atomic_write_bytes(out / "failed_exams.csv", failures_csv(run.failures).encode())
    write_json(out / "failed_exams.json", run.failures)
    page = summary_index_html(
        run.predictions, run.report_links, run.failures, exam_count=len(run.exam_ids)
    )
    atomic_write_bytes(out / "index.html", page.encode())
    print(
        f"bcd {SUMMARY}: {len(run.exam_ids)} exams, {len(run.predictions)} with predictions, "
        f"{len(run.failures)} error records",
        file=sys.stderr,
        flush=True,
    )
    return 1 if args.strict and run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
