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
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from stages import __version__
from stages.core.exam import LABELS, VIEWS, Exam
from stages.core.orientation import to_facing_right
from stages.core.windows import sample_view_input
from stages.io.exam_files import (
    CENTERS_JSON,
    CROPPED_IMAGES,
    PREDICTIONS_JSON,
    load_exam,
    read_image,
)
from stages.io.exam_loop import run_exams, stage_parser
from stages.io.heatmaps_h5 import heatmap_path, read_heatmap
from stages.io.pfs import atomic_write_bytes, exam_dirs, read_json, resolve_pfs_root, write_json
from stages.nets.checkpoints import CheckpointError, load_view_split_classifier
from stages.nets.provenance import (
    IMAGE_MODEL_FILE,
    IMAGEHEATMAPS_MODEL_FILE,
    UNVERIFIED_WARNING,
    file_provenance,
)
from stages.nets.resnet22 import BasicBlockV2
from stages.nets.runtime import (
    EXACT,
    Precision,
    add_device_arguments,
    autocast,
    configure_torch_threads,
    resolve_device,
    resolve_precision,
    use_exact_fp32,
)
from stages.nets.view_split import label_probabilities

# The reference seeds numpy's RandomState once per model run; one exam is one run here.
AUGMENTATION_SEED = 0
MODEL_FILES = {"image": IMAGE_MODEL_FILE, "imageheatmaps": IMAGEHEATMAPS_MODEL_FILE}
MODEL_CHANNELS = {"image": 1, "imageheatmaps": 3}


@dataclass(frozen=True)
class Settings:
    epochs: int
    augmentation: bool
    device: torch.device
    precision: Precision = EXACT


def load_views(
    pfs_root: Path, exam: Exam, with_heatmaps: bool
) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Per view, each image as (H, W, C) float32 facing right; and the inputs' sha256s."""
    exam_id = exam.exam_id
    views: dict[str, list[np.ndarray]] = {view: [] for view in VIEWS}
    digests = {}
    for view, name in exam.image_names():
        file = f"{CROPPED_IMAGES}/{name}.png"
        path = pfs_root / "crop" / exam_id / file
        image = read_image(path, exam_id, file)
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        channels = [image.astype(np.float32)]
        if with_heatmaps:
            for kind in ("benign", "malignant"):
                heatmap_file = heatmap_path(Path(), kind, name).as_posix()
                channels.append(
                    read_heatmap(
                        pfs_root / "generate_heatmaps" / exam_id / heatmap_file,
                        image.shape,
                        exam=exam_id,
                        file=heatmap_file,
                    ).astype(np.float32)
                )
        joint = np.stack([to_facing_right(c, view, exam.horizontal_flip) for c in channels], 2)
        views[view].append(joint)
    return views, digests


def prepare_classifier(model: torch.nn.Module) -> torch.nn.Module:
    """The classifier laid out for speed, same function: BN folded, channels-last weights.

    In each residual block bn2 directly follows conv1, so it folds into conv1's weights
    and a bias (exact up to float rounding, ~1e-7 relative); channels-last (NHWC) spares
    oneDNN and cuDNN a layout conversion around every convolution of these large inputs.
    """
    for block in model.modules():
        if isinstance(block, BasicBlockV2) and isinstance(block.bn2, torch.nn.BatchNorm2d):
            block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn2)
            block.bn2 = torch.nn.Identity()
    return model.to(memory_format=torch.channels_last)


def model_input(window: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A (1, C, h, w) window on `device`, channels-last like the prepared model."""
    return window.to(device).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict(
    models: dict[str, torch.nn.Module],
    views: dict[str, list[np.ndarray]],
    exam: Exam,
    settings: Settings,
) -> dict[str, np.ndarray]:
    """Per model, the mean label probabilities over the augmentation epochs, (4,) in LABELS order.

    The reference restarts the same seeded stream for each model, so every model sees the
    same windows: each epoch's windows are cut once, with all channels, and each model
    takes the channels it uses.
    """
    rng = np.random.RandomState(AUGMENTATION_SEED)
    best_center = exam.metadata["best_center"]
    per_epoch: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for _ in range(settings.epochs):
        windows = {}
        for view in VIEWS:
            index = rng.randint(low=0, high=len(views[view])) if settings.augmentation else 0
            window = sample_view_input(
                views[view][index],
                view,
                tuple(best_center[view][index]),
                rng,
                settings.augmentation,
            )
            windows[view] = torch.from_numpy(window)[None]
        for name, model in models.items():
            channels = MODEL_CHANNELS[name]
            batch = {
                view: model_input(window[:, :channels], settings.device)
                for view, window in windows.items()
            }
            with autocast(settings.precision, settings.device):
                log_probs = model(batch)
            probabilities = label_probabilities({k: v.float() for k, v in log_probs.items()})
            per_epoch[name].append(probabilities.double().cpu().numpy()[0])
    return {name: np.mean(values, axis=0) for name, values in per_epoch.items()}


def csv_text(probabilities: np.ndarray) -> str:
    """The reference's CSV: header and one row, 4 decimals."""
    return ",".join(LABELS) + "\n" + ",".join(f"{p:.4f}" for p in probabilities) + "\n"


def classify_exam(
    pfs_root: Path,
    models: dict[str, torch.nn.Module],
    settings: Settings,
    provenance: dict,
    exam_id: str,
    staging: Path,
) -> None:
    exam = load_exam(pfs_root / "extract_centers" / exam_id, CENTERS_JSON)
    views, digests = load_views(pfs_root, exam, with_heatmaps="imageheatmaps" in models)
    results = {}
    for name, probabilities in predict(models, views, exam, settings).items():
        atomic_write_bytes(staging / f"{name}_predictions.csv", csv_text(probabilities).encode())
        results[name] = dict(zip(LABELS, (float(p) for p in probabilities), strict=True))
    exam_provenance = {**provenance, "input_images_sha256": digests}
    heatmaps_provenance = pfs_root / "generate_heatmaps" / exam_id / "heatmaps_provenance.json"
    if "imageheatmaps" in models and heatmaps_provenance.is_file():
        patch = read_json(heatmaps_provenance)
        exam_provenance["models"] = {**exam_provenance["models"], "patch": patch["patch_model"]}
        exam_provenance["heatmaps_precision"] = patch.get("precision", "fp32")
        exam_provenance["verified"] = exam_provenance["verified"] and patch["verified"]
    if not exam_provenance["verified"]:
        exam_provenance["warning"] = UNVERIFIED_WARNING
    write_json(
        staging / PREDICTIONS_JSON,
        {"exam": exam_id, "models": results, "provenance": exam_provenance},
    )


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser("classify", "Exam-level predictions from the view-split classifiers.")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pfs_root = resolve_pfs_root(args.pfs)
    names = ("image", "imageheatmaps") if args.model == "both" else (args.model,)
    try:
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        models = {}
        for name in names:
            path = pfs_root / "models" / MODEL_FILES[name]
            if not path.is_file():
                raise CheckpointError(f"{path}: classifier not found (see models/README.md)")
            model = load_view_split_classifier(path, MODEL_CHANNELS[name], device)
            models[name] = prepare_classifier(model)
    except (CheckpointError, ValueError) as error:
        print(f"bcd classify: {error}", file=sys.stderr)
        return 2
    threads = configure_torch_threads()
    use_exact_fp32()
    if precision.note:
        print(f"bcd classify: {precision.note}", file=sys.stderr)
    files = {name: file_provenance(pfs_root / "models" / MODEL_FILES[name]) for name in names}
    provenance = {
        "models": files,
        "verified": all(entry["verified"] for entry in files.values()),
        "project_version": __version__,
        "epochs": args.epochs,
        "augmentation": args.augmentation,
        "device": str(device),
        "torch_threads": threads,
        **precision.provenance(),
        "seed": AUGMENTATION_SEED,
    }
    if not provenance["verified"]:
        print(f"bcd classify: {UNVERIFIED_WARNING}", file=sys.stderr)
    settings = Settings(args.epochs, args.augmentation, device, precision)
    exam_ids = [path.name for path in exam_dirs(pfs_root / "extract_centers")]

    def process(exam_id: str, staging: Path) -> None:
        classify_exam(pfs_root, models, settings, provenance, exam_id, staging)

    upstream = ["crop", "extract_centers"]
    if "imageheatmaps" in models:
        upstream.append("generate_heatmaps")
    return run_exams(
        "classify", pfs_root, exam_ids, process, upstream_inputs=upstream, strict=args.strict
    )


if __name__ == "__main__":
    sys.exit(main())
