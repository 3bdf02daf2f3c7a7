"""Stage `generate_heatmaps`: benign and malignant heatmaps from the patch classifier.

Reads  <pfs>/crop/<exam>/cropped_images/, <pfs>/extract_centers/<exam>/data.json,
       <pfs>/models/sample_patch_model.p.
Writes <pfs>/out/<exam>/heatmaps/heatmap_{malignant,benign}/<image>.hdf5 (the
reference's layout) and heatmaps_provenance.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.batching import DatumRun, stage_main
from stages.core.exam import Exam
from stages.core.heatmaps import assemble_heatmap
from stages.core.orientation import to_facing_right
from stages.core.patches import PATCH_SIZE
from stages.harness import EXIT_UNUSABLE, run_exams_pipelined, stage_parser
from stages.io.exam_files import CENTERS_JSON, HEATMAPS_PROVENANCE, load_exam
from stages.io.heatmaps_h5 import KINDS, heatmap_path, write_heatmap
from stages.io.pfs import exam_dirs, write_json
from stages.nets.checkpoints import CheckpointError, load_patch_classifier
from stages.nets.patch_scoring import (
    CLASS_OF_KIND,
    ImagePatches,
    exam_patches,
    patch_probabilities,
    prepare_model,
)
from stages.nets.provenance import PATCH_MODEL_FILE, UNVERIFIED_WARNING, file_provenance
from stages.nets.runtime import (
    EXACT,
    OPENVINO_BACKEND,
    TORCH_BACKEND,
    Precision,
    TorchSetup,
    add_device_arguments,
    on_backend,
    setup_torch_stage,
)
from stages.nets.weights_cache import WeightsCache
from stages.table import CROP, EXTRACT_CENTERS, GENERATE_HEATMAPS, MODELS

# Patches per forward pass, per backend (docs/performance.md): torch runs fastest at 32;
# OpenVINO runs 8 as fast as 32 (the same bytes) and keeps ~1 GiB less working memory.
DEFAULT_BATCH = {TORCH_BACKEND: 32, OPENVINO_BACKEND: 8}


@dataclass(frozen=True)
class ScoredImage:
    """What writing one image's heatmaps needs: where its patches lay, and their scores."""

    view: str
    name: str
    shape: tuple[int, int]
    corners: list[tuple[int, int]]
    scores: np.ndarray


def load_patches(pfs_root: Path, exam_id: str) -> tuple[Exam, list[ImagePatches]]:
    """The exam and its images cut into patch grids (CPU only: safe on a loading thread)."""
    exam = load_exam(pfs_root / EXTRACT_CENTERS / exam_id, CENTERS_JSON)
    return exam, exam_patches(pfs_root / CROP / exam_id, exam)


def score_patches(
    model: torch.nn.Module,
    device: torch.device,
    batch_size: int,
    exam_id: str,
    loaded: tuple[Exam, list[ImagePatches]],
    precision: Precision = EXACT,
) -> tuple[Exam, list[ScoredImage]]:
    """The patch classifier over a loaded exam; the images' pixels are let go."""
    exam, images = loaded
    scores = patch_probabilities(images, model, device, batch_size, exam_id, precision)
    return exam, [
        ScoredImage(image.view, image.name, image.image.shape, image.corners, image_scores)
        for image, image_scores in zip(images, scores, strict=True)
    ]


def write_heatmaps(
    provenance: dict[str, Any], scored: tuple[Exam, list[ScoredImage]], staging: Path
) -> None:
    exam, images = scored
    for image in images:
        for kind in KINDS:
            heatmap = assemble_heatmap(
                image.shape, image.corners, image.scores[:, CLASS_OF_KIND[kind]]
            )
            # Saved in the cropped image's own orientation, like the reference.
            raw_orientation = to_facing_right(heatmap, image.view, exam.horizontal_flip)
            write_heatmap(heatmap_path(staging, kind, image.name), raw_orientation)
    write_json(staging / HEATMAPS_PROVENANCE, provenance)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(GENERATE_HEATMAPS, "Patch-classifier heatmaps for each exam.")
    add_device_arguments(parser)
    chosen = os.environ.get("BCD_HEATMAP_BATCH")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(chosen) if chosen else None,
        help="patches per forward pass (default: $BCD_HEATMAP_BATCH, else "
        + ", ".join(f"{size} on {backend}" for backend, size in DEFAULT_BATCH.items())
        + ")",
    )
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def load_patch_model(
    model_file: Path, setup: TorchSetup, batch_size: int
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The patch classifier ready to run on the setup's backend (for batches of `batch_size`
    patches), and the provenance every exam's heatmaps record.
    """
    if not model_file.is_file():
        raise CheckpointError(f"{model_file}: patch model not found (see models/README.md)")
    model = prepare_model(load_patch_classifier(model_file, setup.device))
    model = on_backend(model, (batch_size, 3, PATCH_SIZE, PATCH_SIZE), setup)
    model_provenance = file_provenance(model_file)
    provenance = {
        "patch_model": model_provenance,
        "verified": model_provenance["verified"],
        **setup.provenance(),
    }
    if not model_provenance["verified"]:
        provenance["warning"] = UNVERIFIED_WARNING
        print(f"bcd {GENERATE_HEATMAPS}: {UNVERIFIED_WARNING} ({model_file})", file=sys.stderr)
    return model, provenance


def prepare(args: argparse.Namespace) -> DatumRun:
    """Torch set up once; each run loads the patch model (again only when it changed)."""
    setup = setup_torch_stage(GENERATE_HEATMAPS, args.device, args.precision, args.backend)
    batch_size = args.batch_size or DEFAULT_BATCH[setup.backend]
    weights: WeightsCache[tuple[torch.nn.Module, dict[str, Any]]] = WeightsCache(GENERATE_HEATMAPS)

    def run(pfs_root: Path) -> int:
        model_file = pfs_root / MODELS / PATCH_MODEL_FILE
        try:
            model, provenance = weights.get(
                [model_file], lambda: load_patch_model(model_file, setup, batch_size)
            )
        except CheckpointError as error:
            print(f"bcd {GENERATE_HEATMAPS}: {error}", file=sys.stderr)
            return EXIT_UNUSABLE

        def compute(
            exam_id: str, loaded: tuple[Exam, list[ImagePatches]]
        ) -> tuple[Exam, list[ScoredImage]]:
            return score_patches(model, setup.device, batch_size, exam_id, loaded, setup.precision)

        # The next exam is loaded and the previous one's heatmaps written while the
        # patch classifier runs on the current one.
        return run_exams_pipelined(
            GENERATE_HEATMAPS,
            pfs_root,
            [path.name for path in exam_dirs(pfs_root / EXTRACT_CENTERS)],
            partial(load_patches, pfs_root),
            compute,
            lambda exam_id, scored, staging: write_heatmaps(provenance, scored, staging),
            upstream_inputs=[CROP, EXTRACT_CENTERS],
            strict=args.strict,
        )

    return run


def main(argv: list[str] | None = None) -> int:
    return stage_main(GENERATE_HEATMAPS, parse_args, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
