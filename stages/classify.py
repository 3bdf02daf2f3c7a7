"""Stage `classify`: the image-only and image+heatmaps exam classifiers.

Reads  <pfs>/crop/<exam>/cropped_images/, <pfs>/extract_centers/<exam>/data.json,
       <pfs>/generate_heatmaps/<exam>/heatmaps/ (image+heatmaps model), <pfs>/models/.
Writes <pfs>/out/<exam>/{image,imageheatmaps}_predictions.csv (the reference's format)
       and predictions.json (full precision, with provenance).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.batching import DatumRun, stage_main
from stages.core.errors import DataError
from stages.core.exam import INPUT_SIZE, LABELS, VIEWS, Exam, view_angle
from stages.core.orientation import to_facing_right
from stages.harness import EXIT_UNUSABLE, run_exams_pipelined, stage_parser
from stages.io.exam_files import (
    CENTERS_JSON,
    CROPPED_IMAGES,
    HEATMAPS_PROVENANCE,
    PREDICTIONS_JSON,
    load_exam,
    read_exam_json,
    read_image,
)
from stages.io.heatmaps_h5 import heatmap_path, read_heatmap
from stages.io.pfs import atomic_write_bytes, exam_dirs, write_json
from stages.nets.checkpoints import CheckpointError, load_view_split_classifier
from stages.nets.exam_scoring import (
    AUGMENTATION_SEED,
    MODEL_CHANNELS,
    MODEL_FILES,
    Settings,
    predict,
    prepare_classifier,
)
from stages.nets.provenance import UNVERIFIED_WARNING, file_provenance
from stages.nets.runtime import TorchSetup, add_device_arguments, on_backend, setup_torch_stage
from stages.nets.view_split import ViewSplitClassifier, trunk_name
from stages.nets.weights_cache import WeightsCache
from stages.table import CLASSIFY, CROP, EXTRACT_CENTERS, GENERATE_HEATMAPS, MODELS


def load_views(
    pfs_root: Path, exam: Exam, with_heatmaps: bool
) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Per view, each image as (H, W, C) float32 facing right; and the inputs' sha256s."""
    exam_id = exam.exam_id
    views: dict[str, list[np.ndarray]] = {view: [] for view in VIEWS}
    digests = {}
    for view, name in exam.image_names():
        file = f"{CROPPED_IMAGES}/{name}.png"
        path = pfs_root / CROP / exam_id / file
        image = read_image(path, exam_id, file)
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        channels = [image.astype(np.float32)]
        if with_heatmaps:
            for kind in ("benign", "malignant"):
                heatmap_file = heatmap_path(Path(), kind, name).as_posix()
                channels.append(
                    read_heatmap(
                        pfs_root / GENERATE_HEATMAPS / exam_id / heatmap_file,
                        image.shape,
                        exam=exam_id,
                        file=heatmap_file,
                    ).astype(np.float32)
                )
        joint = np.stack([to_facing_right(c, view, exam.horizontal_flip) for c in channels], 2)
        views[view].append(joint)
    return views, digests


def csv_text(probabilities: np.ndarray) -> str:
    """The reference's CSV: header and one row, 4 decimals."""
    return ",".join(LABELS) + "\n" + ",".join(f"{p:.4f}" for p in probabilities) + "\n"


@dataclass(frozen=True)
class LoadedExam:
    """An exam's views as the classifiers take them, and the sha256s of the files read."""

    exam: Exam
    views: dict[str, list[np.ndarray]]
    digests: dict[str, str]


def load_classify_inputs(pfs_root: Path, with_heatmaps: bool, exam_id: str) -> LoadedExam:
    """The exam and its views (CPU only: safe on a loading thread)."""
    exam = load_exam(pfs_root / EXTRACT_CENTERS / exam_id, CENTERS_JSON)
    views, digests = load_views(pfs_root, exam, with_heatmaps)
    return LoadedExam(exam, views, digests)


def write_predictions(
    pfs_root: Path,
    provenance: dict[str, Any],
    exam_id: str,
    scored: tuple[dict[str, str], dict[str, np.ndarray]],
    staging: Path,
) -> None:
    """The CSVs and predictions.json; `scored` = (input sha256s, probabilities by model)."""
    digests, predictions = scored
    results = {}
    for name, probabilities in predictions.items():
        atomic_write_bytes(staging / f"{name}_predictions.csv", csv_text(probabilities).encode())
        results[name] = dict(zip(LABELS, (float(p) for p in probabilities), strict=True))
    exam_provenance = {**provenance, "input_images_sha256": digests}
    heatmaps_provenance = pfs_root / GENERATE_HEATMAPS / exam_id / HEATMAPS_PROVENANCE
    if "imageheatmaps" in predictions and heatmaps_provenance.is_file():
        patch = read_heatmaps_provenance(heatmaps_provenance.parent)
        exam_provenance["models"] = {**exam_provenance["models"], "patch": patch["patch_model"]}
        exam_provenance["heatmaps_precision"] = patch.get("precision", "fp32")
        exam_provenance["verified"] = exam_provenance["verified"] and patch["verified"]
    if not exam_provenance["verified"]:
        exam_provenance["warning"] = UNVERIFIED_WARNING
    write_json(
        staging / PREDICTIONS_JSON,
        {"exam": exam_id, "models": results, "provenance": exam_provenance},
    )


def read_heatmaps_provenance(heatmaps_exam_dir: Path) -> dict[str, Any]:
    """generate_heatmaps' provenance of an exam; DataError naming it when unusable."""
    patch = read_exam_json(heatmaps_exam_dir, HEATMAPS_PROVENANCE, "")
    if not (
        isinstance(patch, dict)
        and isinstance(patch.get("patch_model"), dict)
        and isinstance(patch.get("verified"), bool)
    ):
        raise DataError(
            f"{HEATMAPS_PROVENANCE} does not say which patch model made the heatmaps "
            '("patch_model", "verified"): regenerate the heatmaps',
            exam=heatmaps_exam_dir.name,
            file=HEATMAPS_PROVENANCE,
        )
    return patch


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(CLASSIFY, "Exam-level predictions from the view-split classifiers.")
    parser.add_argument(
        "--model",
        choices=("image", "imageheatmaps", "both"),
        default=os.environ.get("BCD_MODEL", "both"),
        help="which classifier(s) to run (default: $BCD_MODEL, else both)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=int(os.environ["BCD_EPOCHS"]) if os.environ.get("BCD_EPOCHS") else None,
        help="augmentation epochs averaged (default: $BCD_EPOCHS, else 10; 1 without augmentation)",
    )
    parser.add_argument(
        "--no-augmentation",
        dest="augmentation",
        action="store_false",
        default=env_flag("BCD_AUGMENTATION", True),
        help="centred windows, no noise (default: $BCD_AUGMENTATION, else augmentation on)",
    )
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 10 if args.augmentation else 1
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def trunks_on_backend(
    model: ViewSplitClassifier, channels: int, setup: TorchSetup
) -> ViewSplitClassifier:
    """`model` with its CC and MLO trunks on the setup's backend, each for its angle's
    window size (every window is resized to it); heads and pooling stay torch's.
    """
    trunks = model.four_view_resnet
    for name, angle in {trunk_name(view): view_angle(view) for view in VIEWS}.items():
        input_shape = (1, channels, *INPUT_SIZE[angle])
        setattr(trunks, name, on_backend(getattr(trunks, name), input_shape, setup))
    return model


def load_classifiers(
    paths: dict[str, Path], setup: TorchSetup
) -> tuple[dict[str, torch.nn.Module], dict[str, dict[str, Any]]]:
    """The classifiers (name -> checkpoint file) ready to run, and their files' provenance."""
    models: dict[str, torch.nn.Module] = {}
    for name, path in paths.items():
        if not path.is_file():
            raise CheckpointError(f"{path}: classifier not found (see models/README.md)")
        channels = MODEL_CHANNELS[name]
        model = load_view_split_classifier(path, channels, setup.device)
        prepare_classifier(model)  # in place: Module.to returns the module itself
        models[name] = trunks_on_backend(model, channels, setup)
    files = {name: file_provenance(path) for name, path in paths.items()}
    if not all(entry["verified"] for entry in files.values()):
        print(f"bcd {CLASSIFY}: {UNVERIFIED_WARNING}", file=sys.stderr)
    return models, files


def prepare(args: argparse.Namespace) -> DatumRun:
    """Torch set up once; each run loads the classifiers (again only when they changed)."""
    names = ("image", "imageheatmaps") if args.model == "both" else (args.model,)
    setup = setup_torch_stage(CLASSIFY, args.device, args.precision, args.backend)
    settings = Settings(args.epochs, args.augmentation, setup.device, setup.precision)
    upstream = [CROP, EXTRACT_CENTERS]
    if "imageheatmaps" in names:
        upstream.append(GENERATE_HEATMAPS)
    weights: WeightsCache[tuple[dict[str, torch.nn.Module], dict[str, dict[str, Any]]]]
    weights = WeightsCache(CLASSIFY)

    def run(pfs_root: Path) -> int:
        paths = {name: pfs_root / MODELS / MODEL_FILES[name] for name in names}
        try:
            models, model_files = weights.get(
                list(paths.values()), lambda: load_classifiers(paths, setup)
            )
        except CheckpointError as error:
            print(f"bcd {CLASSIFY}: {error}", file=sys.stderr)
            return EXIT_UNUSABLE
        provenance = {
            "models": model_files,
            "verified": all(entry["verified"] for entry in model_files.values()),
            "epochs": args.epochs,
            "augmentation": args.augmentation,
            **setup.provenance(),
            "seed": AUGMENTATION_SEED,
        }

        def compute(
            exam_id: str, loaded: LoadedExam
        ) -> tuple[dict[str, str], dict[str, np.ndarray]]:
            return loaded.digests, predict(models, loaded.views, loaded.exam, settings)

        # The next exam's views are read while the classifiers run on the current one.
        return run_exams_pipelined(
            CLASSIFY,
            pfs_root,
            [path.name for path in exam_dirs(pfs_root / EXTRACT_CENTERS)],
            partial(load_classify_inputs, pfs_root, "imageheatmaps" in models),
            compute,
            partial(write_predictions, pfs_root, provenance),
            upstream_inputs=upstream,
            strict=args.strict,
        )

    return run


def main(argv: list[str] | None = None) -> int:
    return stage_main(CLASSIFY, parse_args, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
