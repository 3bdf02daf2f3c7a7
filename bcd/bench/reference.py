"""The NYU reference's own scripts, run unmodified from a checkout the user names.

Nothing of the reference is copied here: its scripts are run as subprocesses, from its
checkout, with its documented command-line flags, on the same exam and the same weights
as ours. One exam per run, as one Pachyderm datum of ours.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bcd.bench.processes import Measured, run_measured
from stages.core.exam import VIEWS
from stages.io.exam_files import EXAM_JSON
from stages.table import CLASSIFY, CROP, EXTRACT_CENTERS, GENERATE_HEATMAPS

REFERENCE_ENV = "NYU_REF"
HEATMAP_BATCH = 100  # the reference's default
SCRIPTS = {
    CROP: "src/cropping/crop_mammogram.py",
    EXTRACT_CENTERS: "src/optimal_centers/get_optimal_centers.py",
    GENERATE_HEATMAPS: "src/heatmaps/run_producer.py",
    CLASSIFY: "src/modeling/run_model.py",
}
# pandas >= 2 no longer skips text columns in groupby().mean(); the reference's classifier
# relies on that. Put on PYTHONPATH, this restores the old default without editing it.
PANDAS_SHIM = '''"""The NYU reference on pandas >= 2: groupby().mean() skips text columns."""
import pandas.core.groupby.generic as groupby_generic

_plain_mean = groupby_generic.DataFrameGroupBy.mean


def _numeric_mean(self, numeric_only=True, *args, **kwargs):
    return _plain_mean(self, numeric_only, *args, **kwargs)


groupby_generic.DataFrameGroupBy.mean = _numeric_mean
'''


@dataclass(frozen=True)
class ReferenceRun:
    """Per stage measurements; classify has one entry per classifier."""

    stages: dict[str, Measured]
    classifiers: dict[str, Measured]
    work: Path


def check_checkout(checkout: Path) -> Path:
    """The checkout's root, or ValueError naming what is missing."""
    missing = [script for script in SCRIPTS.values() if not (checkout / script).is_file()]
    if missing:
        raise ValueError(f"{checkout}: not a breast_cancer_classifier checkout (no {missing[0]})")
    return checkout.resolve()


def write_inputs(exam_dir: Path, work: Path) -> Path:
    """The reference's exam list (a pickled list of one exam dict); returns its path."""
    exam = json.loads((exam_dir / EXAM_JSON).read_text())
    exam_list = [{key: exam[key] for key in ("horizontal_flip", *VIEWS)}]
    path = work / "exam_list.pkl"
    path.write_bytes(pickle.dumps(exam_list))
    return path


def reference_env(base: Mapping[str, str], checkout: Path, shim_dir: Path) -> dict[str, str]:
    shim_dir.mkdir(parents=True, exist_ok=True)
    (shim_dir / "sitecustomize.py").write_text(PANDAS_SHIM)
    env = dict(base)
    env["PYTHONPATH"] = f"{checkout}:{shim_dir}"
    return env


def run_reference(
    checkout: Path,
    exam_dir: Path,
    models: Path,
    work: Path,
    env: Mapping[str, str],
    *,
    processes: int,
    epochs: int,
    python: str = sys.executable,
) -> ReferenceRun:
    """Crop, centres, heatmaps and both classifiers of the reference on one exam, on CPU."""
    work.mkdir(parents=True)
    env = reference_env(env, checkout, work / "shim")
    log = work / "reference.log"
    cropped = work / "cropped_images"
    cropped_list = cropped / "cropped_exam_list.pkl"
    data = work / "data.pkl"
    heatmaps = work / "heatmaps"

    def run(script: str, *args: str | Path | int) -> Measured:
        argv = [python, SCRIPTS[script], *(str(arg) for arg in args)]
        return run_measured(argv, log, env=env, cwd=checkout)

    stages = {
        CROP: run(
            CROP,
            "--input-data-folder", exam_dir,
            "--output-data-folder", cropped,
            "--exam-list-path", write_inputs(exam_dir, work),
            "--cropped-exam-list-path", cropped_list,
            "--num-processes", processes,
        ),
        EXTRACT_CENTERS: run(
            EXTRACT_CENTERS,
            "--cropped-exam-list-path", cropped_list,
            "--data-prefix", cropped,
            "--output-exam-list-path", data,
            "--num-processes", processes,
        ),
        GENERATE_HEATMAPS: run(
            GENERATE_HEATMAPS,
            "--model-path", models / "sample_patch_model.p",
            "--data-path", data,
            "--image-path", cropped,
            "--batch-size", HEATMAP_BATCH,
            "--output-heatmap-path", heatmaps,
            "--device-type", "cpu",
        ),
    }  # fmt: skip
    classifiers = {}
    for model in ("image", "imageheatmaps"):
        extra: list[str | Path] = (
            ["--use-heatmaps", "--heatmaps-path", heatmaps] if model == "imageheatmaps" else []
        )
        classifiers[model] = run(
            CLASSIFY,
            "--model-path", models / f"sample_{model}_model.p",
            "--data-path", data,
            "--image-path", cropped,
            "--output-path", work / f"{model}_predictions.csv",
            "--use-augmentation",
            "--num-epochs", epochs,
            "--device-type", "cpu",
            *extra,
        )  # fmt: skip
    stages[CLASSIFY] = Measured(
        sum(m.seconds for m in classifiers.values()),
        max(m.peak_rss_mib for m in classifiers.values()),
    )
    return ReferenceRun(stages, classifiers, work)
