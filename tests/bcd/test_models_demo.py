"""Demo weights (`bcd models demo`) and `bcd models verify`, through the real CLI."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from helpers import NYU_SAMPLE

from bcd.models.demo_weights import write_demo_weights
from stages.nets.checkpoints import load_patch_classifier, load_view_split_classifier
from stages.nets.provenance import MODEL_FILES, UNVERIFIED_WARNING
from stages.nets.view_split import ViewSplitClassifier, label_probabilities

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bcd_models(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bcd.cli", "models", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def seed0_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("seed0")
    write_demo_weights(directory, 0)
    return directory


def test_demo_files_are_deterministic_per_seed(seed0_dir, tmp_path):
    again = tmp_path / "again"
    torch.manual_seed(1234)  # torch's own generator plays no part
    write_demo_weights(again, 0)
    other = tmp_path / "other"
    write_demo_weights(other, 1)
    for name in MODEL_FILES:
        assert sha256(again / name) == sha256(seed0_dir / name)
        assert sha256(other / name) != sha256(seed0_dir / name)
    assert sorted(p.name for p in again.iterdir()) == sorted(MODEL_FILES)  # no temp files


def test_demo_patch_file_loads_into_plain_torchvision_densenet(seed0_dir):
    state = torch.load(seed0_dir / "sample_patch_model.p", weights_only=True)
    plain = torchvision.models.densenet121(num_classes=4)
    assert list(state) == list(plain.state_dict())
    plain.load_state_dict(state)  # strict: every key, every shape


@pytest.mark.parametrize(
    ("name", "channels"), [("sample_image_model.p", 1), ("sample_imageheatmaps_model.p", 3)]
)
def test_demo_classifier_files_have_the_published_layout(seed0_dir, name, channels):
    checkpoint = torch.load(seed0_dir / name, weights_only=True)
    assert list(checkpoint) == ["model"]
    state = checkpoint["model"]
    assert list(state) == list(ViewSplitClassifier(channels).state_dict())
    assert state["four_view_resnet.cc.first_conv.weight"].shape[1] == channels
    for alias, trunk in (("l_cc", "cc"), ("r_cc", "cc"), ("l_mlo", "mlo"), ("r_mlo", "mlo")):
        prefix = f"four_view_resnet.{trunk}."
        for key in (k for k in state if k.startswith(prefix)):
            alias_key = f"four_view_resnet.{alias}.{key[len(prefix) :]}"
            assert torch.equal(state[alias_key], state[key]), alias_key
    assert not torch.equal(
        state["four_view_resnet.cc.first_conv.weight"],
        state["four_view_resnet.mlo.first_conv.weight"],
    )


def _standardised_patches(image: np.ndarray, corners: list[tuple[int, int]]) -> torch.Tensor:
    image = image.astype(np.float64)
    image -= image.mean()
    image /= max(image.std(), 1e-5)
    patches = np.stack([image[y : y + 256, x : x + 256] for y, x in corners]).astype(np.float32)
    return torch.from_numpy(patches)[:, None].expand(-1, 3, -1, -1)


def test_demo_patch_model_is_not_saturated_on_real_patches(seed0_dir):
    image = cv2.imread(str(NYU_SAMPLE / "1_L_CC.png"), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint16
    height = image.shape[0]
    corners = [(height // 2, 100), (height // 3, 400), (height // 2, 700), (2 * height // 3, 250)]
    model = load_patch_classifier(seed0_dir / "sample_patch_model.p")
    with torch.no_grad():
        probabilities = torch.softmax(model(_standardised_patches(image, corners)), dim=1)
    assert probabilities.max() < 0.8  # far from one-hot
    assert probabilities[:, :2].min() > 0.02  # malignant and benign: the heatmap classes
    assert probabilities[:, :2].std(dim=0).min() > 0.005  # the heatmap classes vary by patch


@pytest.mark.parametrize(
    ("name", "channels"), [("sample_image_model.p", 1), ("sample_imageheatmaps_model.p", 3)]
)
def test_demo_classifiers_give_mid_range_predictions(seed0_dir, name, channels):
    model = load_view_split_classifier(seed0_dir / name, channels)
    rng = np.random.Generator(np.random.PCG64(11))
    sizes = {"CC": (480, 360), "MLO": (520, 330)}
    views = {
        view: torch.from_numpy(
            rng.standard_normal((2, channels, *sizes[view.split("-")[1]])).astype(np.float32)
        )
        for view in VIEWS
    }
    with torch.no_grad():
        probabilities = label_probabilities(model(views))
    assert probabilities.shape == (2, 4)
    assert probabilities.min() > 0.05 and probabilities.max() < 0.95


def test_cli_demo_then_verify(seed0_dir, tmp_path):
    written = bcd_models("demo", str(tmp_path / "models"), "--seed", "0")
    assert written.returncode == 0, written.stderr
    assert UNVERIFIED_WARNING in written.stdout
    for name in MODEL_FILES:
        assert sha256(tmp_path / "models" / name) == sha256(seed0_dir / name)

    checked = bcd_models("verify", str(tmp_path / "models"))
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    for name in MODEL_FILES:
        path = tmp_path / "models" / name
        git_blob = subprocess.run(
            ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert f"{name}  blob {git_blob}  sha256 {sha256(path)}  unverified" in lines
    assert lines[-1] == UNVERIFIED_WARNING


def test_cli_verify_fails_on_missing_or_unusable_files(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    torch.save({"model": {}}, models / "sample_image_model.p")
    checked = bcd_models("verify", str(models))
    assert checked.returncode == 1
    assert "sample_patch_model.p: missing" in checked.stderr
    assert "sample_image_model.p: " in checked.stderr and "missing keys" in checked.stderr


def test_cli_usage_errors():
    assert bcd_models().returncode == 2
    assert bcd_models("demo").returncode == 2
