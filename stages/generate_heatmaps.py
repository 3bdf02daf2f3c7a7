"""Stage `generate_heatmaps`: benign and malignant heatmaps from the patch classifier.

Reads  <pfs>/crop/<exam>/cropped_images/, <pfs>/extract_centers/<exam>/data.json,
       <pfs>/models/sample_patch_model.p.
Writes <pfs>/out/<exam>/heatmaps/heatmap_{malignant,benign}/<image>.hdf5 (the
reference's layout) and heatmaps_provenance.json.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stages import __version__
from stages.core.errors import DataError
from stages.core.exam import VIEWS
from stages.core.heatmaps import (
    assemble_heatmap,
    background_patches,
    cut_patches,
    patch_grid,
    standardize_for_patches,
)
from stages.core.orientation import to_facing_right
from stages.core.patches import PATCH_SIZE
from stages.io.exam_files import CENTERS_JSON, CROPPED_IMAGES, load_exam, read_image
from stages.io.exam_loop import run_exams, stage_parser
from stages.io.heatmaps_h5 import KINDS, heatmap_path, write_heatmap
from stages.io.pfs import exam_dirs, resolve_pfs_root, write_json
from stages.nets.checkpoints import CheckpointError, load_patch_classifier
from stages.nets.densenet import BENIGN_CLASS, MALIGNANT_CLASS
from stages.nets.provenance import PATCH_MODEL_FILE, UNVERIFIED_WARNING, file_provenance
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

PROVENANCE_JSON = "heatmaps_provenance.json"
# The reference seeds Python's random once per run; one exam is one run here.
STRIDE_SEED = 0
CLASS_OF_KIND = {"malignant": MALIGNANT_CLASS, "benign": BENIGN_CLASS}


@dataclass
class ImagePatches:
    """One image's patch grid and which patches are all background."""

    view: str
    name: str
    image: np.ndarray  # standardised, facing right, float64
    corners: list[tuple[int, int]]
    background: np.ndarray


def prepare_image(
    raw: np.ndarray, view: str, name: str, flip: str, rng: random.Random
) -> ImagePatches:
    facing_right = to_facing_right(raw, view, flip)
    corners = patch_grid(facing_right.shape, rng)
    return ImagePatches(
        view,
        name,
        standardize_for_patches(facing_right),
        corners,
        background_patches(facing_right, corners),
    )


def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
    """The patch classifier laid out for speed: channels-last (NHWC) weights.

    oneDNN and cuDNN run NHWC convolutions faster, and the results stay within ~1e-7.
    """
    return model.to(memory_format=torch.channels_last)


def model_inputs(patches: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, 3, 256, 256) channels-last input: each greyscale patch copied to 3 channels."""
    grey = torch.from_numpy(patches).to(device)[:, None]
    return grey.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def patch_probabilities(
    images: list[ImagePatches],
    model: torch.nn.Module,
    device: torch.device,
    batch_size: int,
    progress_label: str,
    precision: Precision = EXACT,
) -> list[np.ndarray]:
    """Softmax outputs (N, 4) float32 per image, all images' patches batched together.

    All-background patches of an image are one input: it is scored once and shared.
    """
    # (image index, patch index) of each distinct input, in the reference's order.
    jobs: list[tuple[int, int]] = []
    for image_index, image in enumerate(images):
        distinct = ~image.background
        if image.background.any():
            distinct[np.argmax(image.background)] = True
        jobs += [(image_index, int(patch)) for patch in np.flatnonzero(distinct)]
    scores = [np.empty((len(image.corners), 4), np.float32) for image in images]
    for start in tqdm(
        range(0, len(jobs), batch_size), desc=progress_label, unit="batch", file=sys.stderr
    ):
        batch = jobs[start : start + batch_size]
        patches = np.concatenate(
            [cut_patches(images[i].image, [images[i].corners[p]]) for i, p in batch]
        )
        with autocast(precision, device):
            logits = model(model_inputs(patches, device))
        probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        for (image_index, patch_index), row in zip(batch, probabilities, strict=True):
            scores[image_index][patch_index] = row
    for image, image_scores in zip(images, scores, strict=True):
        if image.background.any():
            image_scores[image.background] = image_scores[np.argmax(image.background)]
    return scores


def heatmaps_for_exam(
    pfs_root: Path,
    model: torch.nn.Module,
    device: torch.device,
    batch_size: int,
    provenance: dict,
    exam_id: str,
    staging: Path,
    precision: Precision = EXACT,
) -> None:
    exam = load_exam(pfs_root / "extract_centers" / exam_id, CENTERS_JSON)
    rng = random.Random(STRIDE_SEED)
    images = []
    for view in VIEWS:
        for name in exam.images[view]:
            file = f"{CROPPED_IMAGES}/{name}.png"
            raw = read_image(pfs_root / "crop" / exam_id / file, exam_id, file)
            if min(raw.shape) < PATCH_SIZE:
                raise DataError(
                    f"cropped image is {raw.shape[0]}x{raw.shape[1]} px, under the "
                    f"{PATCH_SIZE} px patch on one axis",
                    exam=exam_id,
                    file=file,
                )
            images.append(prepare_image(raw, view, name, exam.horizontal_flip, rng))
    scores = patch_probabilities(images, model, device, batch_size, exam_id, precision)
    for image, image_scores in zip(images, scores, strict=True):
        for kind in KINDS:
            heatmap = assemble_heatmap(
                image.image.shape, image.corners, image_scores[:, CLASS_OF_KIND[kind]]
            )
            # Saved in the cropped image's own orientation, like the reference.
            raw_orientation = to_facing_right(heatmap, image.view, exam.horizontal_flip)
            write_heatmap(heatmap_path(staging, kind, image.name), raw_orientation)
    write_json(staging / PROVENANCE_JSON, provenance)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("generate_heatmaps", "Patch-classifier heatmaps for each exam.")
    add_device_arguments(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(os.environ.get("BCD_HEATMAP_BATCH", "32")),
        help="patches per forward pass (default: $BCD_HEATMAP_BATCH, else 32)",
    )
    args = parser.parse_args(argv)
    pfs_root = resolve_pfs_root(args.pfs)
    model_file = pfs_root / "models" / PATCH_MODEL_FILE
    try:
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        if not model_file.is_file():
            raise CheckpointError(f"{model_file}: patch model not found (see models/README.md)")
        model = prepare_model(load_patch_classifier(model_file, device))
    except (CheckpointError, ValueError) as error:
        print(f"bcd generate_heatmaps: {error}", file=sys.stderr)
        return 2
    threads = configure_torch_threads()
    use_exact_fp32()
    if precision.note:
        print(f"bcd generate_heatmaps: {precision.note}", file=sys.stderr)
    model_provenance = file_provenance(model_file)
    provenance = {
        "patch_model": model_provenance,
        "verified": model_provenance["verified"],
        "device": str(device),
        "torch_threads": threads,
        **precision.provenance(),
        "project_version": __version__,
    }
    if not model_provenance["verified"]:
        provenance["warning"] = UNVERIFIED_WARNING
        print(f"bcd generate_heatmaps: {UNVERIFIED_WARNING} ({model_file})", file=sys.stderr)
    exam_ids = [path.name for path in exam_dirs(pfs_root / "extract_centers")]

    def process(exam_id: str, staging: Path) -> None:
        heatmaps_for_exam(
            pfs_root, model, device, args.batch_size, provenance, exam_id, staging, precision
        )

    return run_exams(
        "generate_heatmaps",
        pfs_root,
        exam_ids,
        process,
        upstream_inputs=["crop", "extract_centers"],
        strict=args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
