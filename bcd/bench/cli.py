"""`bcd bench`: seconds, throughput and peak memory of each stage, beside the NYU reference.

Every measured command runs in its own fresh child process (as a Pachyderm datum does),
with the same thread count for ours and the reference's. See docs/performance.md for
what the figures mean and the results on a reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import torch

from bcd.bench import (
    backends,
    deviation,
    exams,
    machine,
    network,
    ours,
    reference,
    scaling,
    warm,
)
from bcd.bench.processes import CommandFailed, Measured, thread_env
from bcd.bench.report import format_report
from bcd.models.demo_weights import write_demo_weights
from stages.core.exam import VIEWS
from stages.generate_heatmaps import DEFAULT_BATCH
from stages.io.pfs import exam_dirs
from stages.nets.checkpoints import load_patch_classifier
from stages.nets.patch_scoring import prepare_model
from stages.nets.provenance import MODEL_FILES, PATCH_MODEL_FILE, file_provenance
from stages.nets.runtime import (
    EXACT,
    OPENVINO_BACKEND,
    OPENVINO_CACHE_ENV,
    TORCH_BACKEND,
    bf16_supported,
    resolve_precision,
)
from stages.table import CLASSIFY, CROP, EXTRACT_CENTERS, GENERATE_HEATMAPS, MODELS, SAMPLE_DATA

REPO = Path(__file__).resolve().parents[2]
# A full run stays under ~30 minutes on 2 cores only without the scaling runs (each exam
# through `bcd run` costs as much as the per-stage runs): those are asked for by name.


class Defaults(TypedDict):
    """What --quick changes: the run's defaults."""

    epochs: int
    scaling: str
    workers_exams: int
    network_patches: int
    warm_workers: int


FULL: Defaults = {
    "epochs": 10,
    "scaling": "",
    "workers_exams": 0,
    "network_patches": 64,
    "warm_workers": 0,
}
QUICK: Defaults = {
    "epochs": 1,
    "scaling": "1",
    "workers_exams": 2,
    "network_patches": 4,
    "warm_workers": 2,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bcd bench",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--quick", action="store_true", help="small exam, 1 epoch: a smoke run")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO / "sample_data",
        metavar="DIR",
        help="full-size exams (exam.json + PNGs per folder); the first one is measured "
        "(default: the repository's sample_data/)",
    )
    parser.add_argument(
        "--models", type=Path, metavar="DIR", help="checkpoints (default: seeded demo weights)"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=Path(os.environ[reference.REFERENCE_ENV])
        if os.environ.get(reference.REFERENCE_ENV)
        else None,
        metavar="DIR",
        help=f"NYU breast_cancer_classifier checkout to run beside ours "
        f"(default: ${reference.REFERENCE_ENV})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=machine.available_cores(),
        help="threads for every measured process, ours and the reference's "
        "(default: the cores this process may use)",
    )
    parser.add_argument("--epochs", type=int, help="classify epochs (full: 10, quick: 1)")
    parser.add_argument(
        "--scaling",
        help="exam counts for the `bcd run` scaling runs with one worker, comma separated, "
        "e.g. 1,4,8; '' skips them (full: none, quick: 1)",
    )
    parser.add_argument(
        "--workers-exams",
        type=int,
        help="exams in the `bcd run --workers 1` vs 2 comparison; 0 skips it (full: 0, quick: 2)",
    )
    parser.add_argument(
        "--warm-workers",
        type=int,
        metavar="N",
        help="N quick exams through generate_heatmaps and classify in one batched (warm) "
        "process against one process per exam, and N full-size ones on CUDA when present; "
        "0 skips it (full: 0, quick: 2)",
    )
    parser.add_argument(
        "--pipelines",
        type=Path,
        default=REPO / "pipelines" / "cpu",
        metavar="DIR",
        help="specs for the scaling runs (default: the repository's pipelines/cpu/)",
    )
    parser.add_argument(
        "--accuracy-exam",
        type=Path,
        metavar="DIR",
        help="measure the fast mode's deviation on this exam (e.g. a real one) too",
    )
    parser.add_argument("--no-fast", dest="fast", action="store_false", help="skip bf16 runs")
    parser.add_argument(
        "--no-busy",
        dest="busy",
        action="store_false",
        help="skip the busy-CPU row: generate_heatmaps on the quick exam, torch and openvino, "
        "each alone and beside one busy process",
    )
    parser.add_argument(
        "--scaling-only",
        action="store_true",
        help="only the `bcd run` scaling runs (with --scaling / --workers-exams)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: CPU, plus the model stages on CUDA when a GPU is present",
    )
    parser.add_argument(
        "--work", type=Path, metavar="DIR", help="keep every run's files here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    args.epochs = args.epochs or defaults["epochs"]
    args.scaling = [
        int(n)
        for n in (defaults["scaling"] if args.scaling is None else args.scaling).split(",")
        if n
    ]
    if args.workers_exams is None:
        args.workers_exams = defaults["workers_exams"]
    if args.warm_workers is None:
        args.warm_workers = defaults["warm_workers"]
    args.network_patches = defaults["network_patches"]
    if args.threads < 1 or args.epochs < 1 or any(n < 1 for n in args.scaling):
        parser.error("--threads, --epochs and --scaling counts must be at least 1")
    if args.warm_workers == 1 or args.warm_workers < 0:
        parser.error("--warm-workers needs at least 2 exams for a steady state (0 skips it)")
    return args


def spec_memory(pipelines: Path, stage: str) -> str | None:
    """resource_requests.memory of a stage's spec, if the spec is there."""
    path = pipelines / f"{stage}.json"
    if not path.is_file():
        return None
    memory: str | None = json.loads(path.read_text()).get("resource_requests", {}).get("memory")
    return memory


def stage_row(measured: Measured, images: int, memory: str | None) -> dict[str, Any]:
    return {
        "seconds": measured.seconds,
        "images_per_s": images / measured.seconds,
        "peak_rss_mib": measured.peak_rss_mib,
        "spec_memory": memory,
    }


def heatmap_rates(row: dict[str, Any], counts: ours.PatchCounts) -> dict[str, Any]:
    return {
        **row,
        "patches": counts.total,
        "patches_scored": counts.scored,
        "background_skipped": counts.total - counts.scored,
        "patches_per_s": counts.total / row["seconds"],
        "scored_per_s": counts.scored / row["seconds"],
    }


def prepare_models(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """The weights folder and how to name them in the report."""
    if args.models:
        missing = [name for name in MODEL_FILES if not (args.models / name).is_file()]
        if missing:
            raise ValueError(f"{args.models}: missing {', '.join(missing)}")
        verified = all(file_provenance(args.models / name)["verified"] for name in MODEL_FILES)
        return args.models.resolve(), "published" if verified else f"from {args.models}"
    folder = work / MODELS
    folder.mkdir()
    write_demo_weights(folder)
    return folder, "seeded demo weights (bcd models demo)"


def measure_ours(
    pfs: Path, images: int, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Each of our stages on one exam: seconds, images/s, peak RSS."""
    log = pfs.parent / "ours.log"
    stage_args = {
        GENERATE_HEATMAPS: ["--device", "cpu", "--precision", "fp32"],
        CLASSIFY: ["--device", "cpu", "--precision", "fp32", "--epochs", str(args.epochs)],
    }
    rows = {}
    for stage in (*ours.STAGES, *ours.REPORT_STAGES):
        print(f"bcd bench: ours: {stage}", file=sys.stderr, flush=True)
        measured = ours.run_stage(stage, pfs, log, env, stage_args.get(stage, ()))
        rows[stage] = stage_row(measured, images, spec_memory(REPO / "pipelines", stage))
    return rows


def measure_network(
    pfs: Path,
    exam_id: str,
    models: Path,
    args: argparse.Namespace,
    peaks: dict[str, float],
    conversion_cache: Path,
) -> dict[str, Any]:
    """The DenseNet alone on tissue patches of the exam, as generate_heatmaps runs it, on
    each backend: torch's rows keep their names, OpenVINO's are prefixed "openvino ".
    OpenVINO's network is converted once (or read from the stage run's cache) for both
    precisions."""
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = prepare_model(load_patch_classifier(models / PATCH_MODEL_FILE, device))
    flops = network.flops_per_patch(model)
    patches = network.tissue_patches(pfs, exam_id, args.network_patches)
    # The stage's batch per backend; fewer patches (--quick) make one batch of them, not one
    # zero-padded to OpenVINO's fixed shape, so that patches/s counts patches.
    batches = {backend: min(DEFAULT_BATCH[backend], len(patches)) for backend in backends.BACKENDS}
    precisions = [("fp32 (exact, the default)", EXACT)]
    if bf16_supported(device):
        precisions.append(("bf16 (fast mode)", resolve_precision("bf16", device)))
    throughput = {}
    for backend in backends.BACKENDS:
        prefix = "" if backend == TORCH_BACKEND else f"{backend} "
        for name, precision in precisions:
            print(f"bcd bench: network alone: {backend} {precision.used}", file=sys.stderr)
            rate = backends.network_throughput(
                model, patches, batches[backend], precision, backend, args.threads, conversion_cache
            )
            gflops = rate * flops / 1e9
            throughput[prefix + name] = {
                "backend": backend,
                "patches_per_s": rate,
                "gflops": gflops,
                "peak": precision.used,
                "of_peak": gflops / peaks[precision.used],
            }
    return {
        "gflop_per_patch": flops / 1e9,
        "patches": len(patches),
        "batch": batches,
        "backend_versions": backends.versions(),
        "throughput": throughput,
    }


def rerun_model_stages(
    exact_pfs: Path, folder: Path, env: dict[str, str], flags: list[str], epochs: int
) -> tuple[Path, Measured, Measured]:
    """generate_heatmaps then classify with `flags`, on the exact run's crops, centres, models."""
    pfs = ours.link_inputs(
        folder, {name: exact_pfs / name for name in (CROP, EXTRACT_CENTERS, MODELS)}
    )
    log = folder.with_name(f"{folder.name}.log")
    heatmaps = ours.run_stage(GENERATE_HEATMAPS, pfs, log, env, flags)
    classify = ours.run_stage(CLASSIFY, pfs, log, env, [*flags, "--epochs", str(epochs)])
    return pfs, heatmaps, classify


def measure_fast(
    work: Path,
    exact_pfs: Path,
    exam_id: str,
    images: int,
    counts: ours.PatchCounts,
    args: argparse.Namespace,
    env: dict[str, str],
    device: str = "cpu",
) -> dict[str, Any]:
    """generate_heatmaps then classify at --precision bf16; deviation from the exact run."""
    precision = resolve_precision("bf16", torch.device(device))
    result: dict[str, Any] = {"requested": "bf16", "used": precision.used, "note": precision.note}
    if precision.used != "bf16":
        return result
    flags = ["--device", device, "--precision", "bf16"]
    pfs, heatmaps, classify = rerun_model_stages(
        exact_pfs, work / f"fast-{device}", env, flags, args.epochs
    )
    result["stages"] = {
        GENERATE_HEATMAPS: heatmap_rates(stage_row(heatmaps, images, None), counts),
        CLASSIFY: stage_row(classify, images, None),
    }
    result["deviation"] = fast_deviation(exact_pfs, pfs, exam_id)
    return result


def fast_deviation(exact_pfs: Path, fast_pfs: Path, exam_id: str) -> dict[str, Any]:
    heatmaps = deviation.heatmap_difference(
        exact_pfs / GENERATE_HEATMAPS / exam_id, fast_pfs / GENERATE_HEATMAPS / exam_id
    )
    predictions = deviation.prediction_difference(
        deviation.our_predictions(exact_pfs / CLASSIFY / exam_id),
        deviation.our_predictions(fast_pfs / CLASSIFY / exam_id),
    )
    return {
        "exam": exam_id,
        "heatmap_max_abs": heatmaps["max_abs"],
        "heatmap_mean_abs": heatmaps["mean_abs"],
        "prediction_max_abs": predictions,
    }


def accuracy_on(
    exam_dir: Path, work: Path, models: Path, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    """Exact and bf16 runs of the model stages on one more exam (not timed)."""
    data = work / "data"
    exams.copy_exam(exam_dir, data / exam_dir.name)
    exact = ours.link_inputs(work / "exact", {SAMPLE_DATA: data, MODELS: models})
    log = work / "accuracy.log"
    for stage in ours.STAGES:
        flags = [] if stage in ours.PREP_STAGES else ["--device", "cpu"]
        if stage == CLASSIFY:
            flags += ["--epochs", str(args.epochs)]
        ours.run_stage(stage, exact, log, env, flags)
    flags = ["--device", "cpu", "--precision", "bf16"]
    fast, _, _ = rerun_model_stages(exact, work / "fast", env, flags, args.epochs)
    return fast_deviation(exact, fast, exam_dir.name)


def measure_reference(
    checkout: Path,
    exam_dir: Path,
    models: Path,
    our_pfs: Path,
    work: Path,
    args: argparse.Namespace,
    env: dict[str, str],
) -> dict[str, Any]:
    """The NYU reference on the same exam: per stage figures and how close ours came."""
    print("bcd bench: NYU reference (crop, centres, heatmaps, 2 classifiers)", file=sys.stderr)
    run = reference.run_reference(
        checkout, exam_dir, models, work, env, processes=args.threads, epochs=args.epochs
    )
    stages = {
        name: {"seconds": m.seconds, "peak_rss_mib": m.peak_rss_mib}
        for name, m in run.stages.items()
    }
    for name, m in run.classifiers.items():
        stages[CLASSIFY][f"{name}_seconds"] = m.seconds
    heatmaps = deviation.heatmap_difference(our_pfs / GENERATE_HEATMAPS / exam_dir.name, work)
    predictions = deviation.prediction_difference(
        deviation.our_predictions(our_pfs / CLASSIFY / exam_dir.name),
        deviation.reference_predictions(work),
    )
    return {
        "checkout": str(checkout),
        "stages": stages,
        "end_to_end": {
            "seconds": sum(row["seconds"] for row in stages.values()),
            "peak_rss_mib": max(row["peak_rss_mib"] for row in stages.values()),
        },
        "parity": {"heatmap_max_abs": heatmaps["max_abs"], "prediction_max_abs": predictions},
    }


def measure_scaling(
    sources: list[Path], models: Path, work: Path, args: argparse.Namespace, result: dict[str, Any]
) -> None:
    """`bcd run` over 1..N exams with one worker, and the workers comparison, into `result`.

    Smallest runs first, saved to --json after each, so a run cut short keeps the
    workers comparison and the smaller sizes.
    """
    overrides = {} if args.epochs == FULL["epochs"] else {"BCD_EPOCHS": str(args.epochs)}
    plan = {(count, 1) for count in args.scaling}
    if args.workers_exams:
        plan |= {(args.workers_exams, 1), (args.workers_exams, 2)}
    runs: list[dict[str, Any]] = []
    result["scaling"] = {"pipelines": str(args.pipelines), "epochs": args.epochs, "runs": runs}
    for count, workers in sorted(plan):
        print(f"bcd bench: bcd run, {count} exams, {workers} workers", file=sys.stderr)
        folder = work / f"run-{count}x{workers}"
        data = exams.exam_set(sources, count, folder / SAMPLE_DATA)
        run = scaling.run_pipeline(
            data,
            models,
            args.pipelines,
            folder / "out",
            workers,
            thread_env(args.threads),
            folder / "run.log",
            overrides,
        )
        runs.append(
            {
                "exams": count,
                "workers": workers,
                "seconds": run.measured.seconds,
                "seconds_per_exam": run.seconds_per_exam,
                "peak_rss_mib": run.measured.peak_rss_mib,
                "pipeline_seconds": run.pipeline_seconds,
            }
        )
        save_partial(args, result)


def measure_gpu(
    work: Path,
    exact_pfs: Path,
    exam_id: str,
    images: int,
    counts: ours.PatchCounts,
    args: argparse.Namespace,
    env: dict[str, str],
) -> dict[str, Any]:
    """The model stages on CUDA (fp32 and bf16), with their distance from the CPU run."""
    flags = ["--device", "cuda", "--precision", "fp32"]
    pfs, heatmaps, classify = rerun_model_stages(exact_pfs, work / "gpu", env, flags, args.epochs)
    return {
        "name": torch.cuda.get_device_name(0),
        "stages": {
            "generate_heatmaps fp32": heatmap_rates(stage_row(heatmaps, images, None), counts),
            "classify fp32": stage_row(classify, images, None),
        },
        "deviation_from_cpu": fast_deviation(exact_pfs, pfs, exam_id),
        "fast": measure_fast(work, exact_pfs, exam_id, images, counts, args, env, device="cuda"),
    }


def measure_warm_workers(
    sources: list[Path], models: Path, work: Path, args: argparse.Namespace, result: dict[str, Any]
) -> None:
    """One warm process against one per exam (`warm`): on the CPU with the quick exam
    (a full-size one costs ~30 minutes there), on CUDA with full-size exams."""
    parts: dict[str, Any] = {}
    result["warm_workers"] = parts
    quick = quick_exam(sources, work, args)
    parts["cpu"] = warm_workers_on("cpu", [quick], models, work / "cpu", args)
    save_partial(args, result)
    if args.device != "cpu" and torch.cuda.is_available():
        full_size = exams.source_exams(args.data)
        parts["cuda"] = warm_workers_on("cuda", full_size, models, work / "cuda", args)
        parts["cuda"]["name"] = torch.cuda.get_device_name(0)
    else:
        why = "--device cpu" if args.device == "cpu" else "torch sees no CUDA device"
        parts["cuda"] = {"skipped": f"not measured on CUDA: {why}"}
        print(f"bcd bench: warm workers {parts['cuda']['skipped']}", file=sys.stderr)
    save_partial(args, result)


def quick_exam(sources: list[Path], work: Path, args: argparse.Namespace) -> Path:
    """The quick exam: the measured one itself with --quick, else it shrunk under `work`."""
    if args.quick:
        return sources[0]
    return exams.shrink_exam(sources[0], work / "quick" / sources[0].name)


def measure_busy_cpu(
    sources: list[Path], models: Path, work: Path, args: argparse.Namespace, result: dict[str, Any]
) -> None:
    """The busy-CPU row on the quick exam (`backends`), into `result`."""
    exam = quick_exam(sources, work, args)
    result["busy_cpu"] = backends.measure_busy_cpu(exam, models, work, args.threads)
    save_partial(args, result)


def warm_workers_on(
    device: str, sources: list[Path], models: Path, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """--warm-workers exams (copies of `sources`), crop and centres once, then each
    model stage unbatched and batched, exact fp32 and, with the fast mode, bf16."""
    env = thread_env(args.threads)
    data = exams.exam_set(sources, args.warm_workers, work / SAMPLE_DATA)
    names = [path.name for path in exam_dirs(data)]
    prepared = ours.link_inputs(work / "prepared", {SAMPLE_DATA: data, MODELS: models})
    for stage in ours.PREP_STAGES:
        ours.run_stage(stage, prepared, work / "prepare.log", env)
    precisions = ["fp32"]
    if args.fast and resolve_precision("bf16", torch.device(device)).used == "bf16":
        precisions.append("bf16")
    part: dict[str, Any] = {
        "device": device,
        "exam": sources[0].name,
        "exams": len(names),
        "epochs": args.epochs,
        "threads": args.threads,
        "precisions": {},
    }
    for precision in precisions:
        flags = ["--device", device, "--precision", precision]
        folder = work / precision
        heatmaps = {
            mode: warm_heatmaps(folder / GENERATE_HEATMAPS / mode, names)
            for mode in ("unbatched", "batched")
        }
        rows = {
            GENERATE_HEATMAPS: warm.compare_stage(
                GENERATE_HEATMAPS,
                names,
                prepared,
                {},
                models,
                folder / GENERATE_HEATMAPS,
                flags,
                env,
            ),
            CLASSIFY: warm.compare_stage(
                CLASSIFY,
                names,
                prepared,
                heatmaps,
                models,
                folder / CLASSIFY,
                [*flags, "--epochs", str(args.epochs)],
                env,
            ),
        }
        part["precisions"][precision] = {**rows, "both": warm.both_stages(rows)}
    return part


def warm_heatmaps(runs: Path, names: list[str]) -> Path:
    """A generate_heatmaps repo of the exams' outputs, which lie in one datum root each."""
    repo = runs.with_name(f"{runs.name}-repo")
    repo.mkdir(parents=True)
    for name in names:
        (repo / name).symlink_to(runs / name / "out" / name, target_is_directory=True)
    return repo


def save_partial(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Write what is measured so far to --json, marked incomplete (a run cut short keeps it)."""
    if args.json:
        write_json(args.json, {**result, "complete": False})


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def run_bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if args.reference:
        args.reference = reference.check_checkout(args.reference)
    models, weights = prepare_models(args, work)
    sources = exams.source_exams(args.data)
    if args.quick:
        sources = [exams.shrink_exam(sources[0], work / "quick" / sources[0].name)]
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": machine.machine_facts(args.threads),
        "settings": {
            "exam": sources[0].name,
            "images": exams.image_count(sources[0]),
            "views": list(VIEWS),
            "epochs": args.epochs,
            "heatmap_batch": DEFAULT_BATCH,
            "weights": weights,
        },
    }
    if not args.scaling_only:
        measure_exam(sources[0], models, work, args, result)
        if args.warm_workers:
            measure_warm_workers(sources, models, work / "warm", args, result)
        if args.busy:
            measure_busy_cpu(sources, models, work / "busy", args, result)
    if args.scaling or args.workers_exams:
        measure_scaling(sources, models, work / "scaling", args, result)
    return {**result, "complete": True}


def measure_exam(
    exam_dir: Path, models: Path, work: Path, args: argparse.Namespace, result: dict[str, Any]
) -> None:
    """Measure the one exam into `result`: stages, network, fast mode, GPU, reference.

    What is measured is saved to --json after each part.
    """
    # The first run of each stage converts into this cache; the cached run reads it.
    conversion_cache = work / "openvino-cache"
    env = {**thread_env(args.threads), OPENVINO_CACHE_ENV: str(conversion_cache)}
    exam_id, images = exam_dir.name, exams.image_count(exam_dir)
    data = work / "exam" / SAMPLE_DATA
    exams.copy_exam(exam_dir, data / exam_id)
    pfs = ours.link_inputs(work / "ours", {SAMPLE_DATA: data, MODELS: models})
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    peaks = {"fp32": machine.matmul_gflops(torch.float32, cpu)}
    if bf16_supported(cpu):
        peaks["bf16"] = machine.matmul_gflops(torch.bfloat16, cpu)
    stages = measure_ours(pfs, images, args, env)
    # The same crops and centres feed every later run: their patches are counted once.
    counts = ours.patch_counts(pfs, exam_id)
    stages[GENERATE_HEATMAPS] = heatmap_rates(stages[GENERATE_HEATMAPS], counts)
    compared = [stages[name] for name in ours.STAGES]
    result["peak_gflops"] = peaks
    result["stages"] = stages
    result["end_to_end"] = {
        "stages": list(ours.STAGES),
        "seconds": sum(row["seconds"] for row in compared),
        "images_per_s": images / sum(row["seconds"] for row in compared),
        "peak_rss_mib": max(row["peak_rss_mib"] for row in compared),
    }
    heatmaps = stages[GENERATE_HEATMAPS]
    net = measure_network(pfs, exam_id, models, args, peaks, conversion_cache)
    heatmaps["gflops_effective"] = heatmaps["scored_per_s"] * net["gflop_per_patch"]
    result["network"] = net
    result["cached_conversion"] = measure_cached(
        pfs, exam_id, images, counts, args.epochs, env, result
    )
    save_partial(args, result)
    fresh = thread_env(args.threads)  # every later part: each process converts, as at first
    if args.fast:
        print("bcd bench: fast mode (bf16)", file=sys.stderr)
        result["fast"] = measure_fast(work, pfs, exam_id, images, counts, args, fresh)
        if args.accuracy_exam and result["fast"]["used"] == "bf16":
            result["fast"]["deviation_accuracy_exam"] = accuracy_on(
                args.accuracy_exam, work / "accuracy", models, args, fresh
            )
        save_partial(args, result)
    if args.device != "cpu" and torch.cuda.is_available():
        result["gpu"] = measure_gpu(work, pfs, exam_id, images, counts, args, fresh)
        save_partial(args, result)
    elif args.device == "cuda":
        print("bcd bench: --device cuda, but torch sees no CUDA device", file=sys.stderr)
    if args.reference:
        result["reference"] = measure_reference(
            args.reference, data / exam_id, models, pfs, work / "reference", args, fresh
        )
        result["ratios"] = speed_ratios(result, net["gflop_per_patch"])
        save_partial(args, result)


def measure_cached(
    pfs: Path,
    exam_id: str,
    images: int,
    counts: ours.PatchCounts,
    epochs: int,
    env: dict[str, str],
    result: dict[str, Any],
) -> dict[str, Any]:
    """generate_heatmaps again, its conversion read from the cache the first run filled:
    what each later datum of a worker costs (its outputs must be the first run's bytes);
    and classify on OpenVINO, converting then cached, beside auto's torch."""
    print(f"bcd bench: ours: {GENERATE_HEATMAPS}, conversion cached", file=sys.stderr)
    cached_repo = f"{GENERATE_HEATMAPS}-cached"
    flags = ["--device", "cpu", "--precision", "fp32"]
    measured = ours.run_stage(
        GENERATE_HEATMAPS, pfs, pfs.parent / "ours.log", env, flags, output_name=cached_repo
    )
    heatmaps = heatmap_rates(stage_row(measured, images, None), counts)
    first = result["stages"][GENERATE_HEATMAPS]["seconds"]
    # classify on OpenVINO (auto keeps torch): converting, then from the cache.
    classify_flags = [*flags, "--backend", OPENVINO_BACKEND, "--epochs", str(epochs)]
    classify_repos = {
        run: f"{CLASSIFY}-{OPENVINO_BACKEND}-{run}" for run in ("converting", "cached")
    }
    classify = {
        run: stage_row(
            ours.run_stage(
                CLASSIFY, pfs, pfs.parent / "ours.log", env, classify_flags, output_name=repo
            ),
            images,
            None,
        )
        for run, repo in classify_repos.items()
    }
    return {
        GENERATE_HEATMAPS: heatmaps,
        "saved_s": first - heatmaps["seconds"],
        "end_to_end_seconds": result["end_to_end"]["seconds"] - first + heatmaps["seconds"],
        "identical": warm.files_of(pfs / GENERATE_HEATMAPS / exam_id)
        == warm.files_of(pfs / cached_repo / exam_id),
        "classify_openvino": {
            **classify,
            "prediction_max_abs_vs_torch": deviation.prediction_difference(
                deviation.our_predictions(pfs / CLASSIFY / exam_id),
                deviation.our_predictions(pfs / classify_repos["cached"] / exam_id),
            ),
        },
    }


def speed_ratios(result: dict[str, Any], gflop_per_patch: float) -> dict[str, float]:
    """Reference seconds / our seconds per stage and end to end (> 1: ours is faster)."""
    stages, ref = result["stages"], result["reference"]
    ratios = {
        name: ref["stages"][name]["seconds"] / stages[name]["seconds"] for name in ours.STAGES
    }
    ratios["end_to_end"] = ref["end_to_end"]["seconds"] / result["end_to_end"]["seconds"]
    ref_heatmaps = ref["stages"][GENERATE_HEATMAPS]
    ref_heatmaps["patches_per_s"] = stages[GENERATE_HEATMAPS]["patches"] / ref_heatmaps["seconds"]
    ref_heatmaps["gflops_effective"] = ref_heatmaps["patches_per_s"] * gflop_per_patch
    cached = result.get("cached_conversion")
    if cached:
        ratios["cached_generate_heatmaps"] = (
            ref_heatmaps["seconds"] / cached[GENERATE_HEATMAPS]["seconds"]
        )
        ratios["cached_end_to_end"] = ref["end_to_end"]["seconds"] / cached["end_to_end_seconds"]
    fast_heatmaps = result.get("fast", {}).get("stages", {}).get(GENERATE_HEATMAPS)
    if fast_heatmaps:
        ratios["fast_generate_heatmaps"] = ref_heatmaps["seconds"] / fast_heatmaps["seconds"]
    return ratios


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bcd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run_bench(args, work.resolve())
    except (CommandFailed, ValueError) as error:
        kept = args.work is not None or any(work.iterdir())
        print(f"bcd bench: {error}" + (f" (files kept in {work})" if kept else ""), file=sys.stderr)
        if not kept:
            work.rmdir()
        return 1
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(format_report(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
