"""Checkpoint loading: unsafe pickles refused unexecuted, wrong layouts named, provenance."""

from __future__ import annotations

import hashlib
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO

from stages.nets.checkpoints import (
    CheckpointError,
    load_model_file,
    load_patch_classifier,
    load_view_split_classifier,
    read_classifier_state_dict,
    read_patch_state_dict,
)
from stages.nets.densenet import PatchDenseNet121
from stages.nets.provenance import UNVERIFIED_WARNING, file_provenance, is_published
from stages.nets.view_split import ViewSplitClassifier


class _RunsShellOnLoad:
    """Unpickling this runs `touch marker`, as a hostile checkpoint would run anything."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _patch_state() -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in PatchDenseNet121().state_dict().items()}


def _classifier_state(channels: int) -> dict[str, torch.Tensor]:
    state = ViewSplitClassifier(channels).state_dict()
    return {key: value.clone() for key, value in state.items()}


# --- unsafe files -------------------------------------------------------------------


def test_plain_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "sample_patch_model.p"
    payload = {"features.conv0.weight": _RunsShellOnLoad(marker)}
    path.write_bytes(pickle.dumps(payload, protocol=2))

    with pytest.raises(CheckpointError, match="refused") as caught:
        load_patch_classifier(path)
    assert str(path) in str(caught.value)
    assert "posix.system" in str(caught.value)
    assert not marker.exists()

    # The file really is hostile: an unrestricted unpickler runs its payload.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_torch_archive_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "sample_image_model.p"
    torch.save({"model": {"fc1_cc.weight": _RunsShellOnLoad(marker)}}, path)

    with pytest.raises(CheckpointError, match="nothing in it was executed") as caught:
        load_view_split_classifier(path, 1)
    assert "GLOBAL posix.system" in str(caught.value)
    assert not marker.exists()

    torch.load(path, weights_only=False)
    assert marker.exists()


def test_damaged_and_missing_files_are_reported(tmp_path):
    whole = tmp_path / "whole.p"
    torch.save(_patch_state(), whole)
    path = tmp_path / "sample_patch_model.p"
    path.write_bytes(whole.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        read_patch_state_dict(path)
    path.write_bytes(bytes(range(256)) * 20)  # not an archive: read as a bare pickle
    with pytest.raises(CheckpointError, match="refused"):
        read_patch_state_dict(path)
    with pytest.raises(CheckpointError, match="no such file"):
        read_patch_state_dict(tmp_path / "absent.p")


# --- layouts ------------------------------------------------------------------------


def test_patch_file_must_be_a_state_dict_of_tensors(tmp_path):
    path = tmp_path / "sample_patch_model.p"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        read_patch_state_dict(path)
    torch.save({"features.conv0.weight": torch.zeros(2), "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="not tensors: epoch"):
        read_patch_state_dict(path)
    torch.save({"features.conv0.weight": torch.zeros(2), 7: torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="keys that are not names: 7"):
        read_patch_state_dict(path)


def test_classifier_file_must_wrap_the_state_dict_in_model(tmp_path):
    path = tmp_path / "sample_image_model.p"
    torch.save(_classifier_state(1), path)
    with pytest.raises(CheckpointError, match=r'\{"model": state_dict\}') as caught:
        read_classifier_state_dict(path)
    assert "'four_view_resnet.cc.first_conv.weight'" in str(caught.value)
    # ... and a classifier file is no patch model.
    torch.save({"model": _classifier_state(1)}, path)
    with pytest.raises(CheckpointError, match="not tensors: model"):
        load_patch_classifier(path)


def test_key_and_shape_mismatches_are_named(tmp_path):
    state = _patch_state()
    del state["features.norm5.running_var"]
    del state["classifier.bias"]
    state["classifier.extra"] = torch.zeros(1)
    state["classifier.weight"] = torch.zeros(3, 1024)
    path = tmp_path / "sample_patch_model.p"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as caught:
        load_patch_classifier(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: does not fit PatchDenseNet121")
    assert "2 missing keys: features.norm5.running_var, classifier.bias" in message
    assert "1 unexpected keys: classifier.extra" in message
    assert "1 shape mismatches: classifier.weight (file (3, 1024), model (4, 1024))" in message


def test_long_key_lists_are_cut_short(tmp_path):
    state = {k: v for k, v in _patch_state().items() if "denseblock4" not in k}
    path = tmp_path / "sample_patch_model.p"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing keys: .*, \.\.\. \(\d+ more\)"):
        load_patch_classifier(path)


def test_num_batches_tracked_may_be_absent(tmp_path):
    state = {k: v for k, v in _patch_state().items() if not k.endswith("num_batches_tracked")}
    state["classifier.bias"] = torch.tensor([0.5, -0.5, 1.0, 2.0])
    path = tmp_path / "sample_patch_model.p"
    torch.save(state, path)
    model = load_patch_classifier(path)
    assert torch.equal(model.classifier.bias, state["classifier.bias"])
    assert not model.training


def test_classifier_with_the_wrong_input_channels_is_named(tmp_path):
    path = tmp_path / "sample_imageheatmaps_model.p"
    torch.save({"model": _classifier_state(1)}, path)
    with pytest.raises(CheckpointError, match="made for 1-channel input, not the 3 asked for"):
        load_model_file(path)
    assert load_view_split_classifier(path, 1).input_channels == 1


def test_differing_aliases_warn_and_the_last_registered_copy_wins(tmp_path):
    state = _classifier_state(1)
    for alias, value in (("l_cc", 0.25), ("r_cc", 0.5)):
        state[f"four_view_resnet.{alias}.first_conv.weight"] = torch.full((16, 1, 7, 7), value)
    path = tmp_path / "sample_image_model.p"
    torch.save({"model": state}, path)
    with pytest.warns(UserWarning) as caught:
        model = load_view_split_classifier(path, 1)
    messages = [str(warning.message) for warning in caught]
    assert any("four_view_resnet.l_cc differs from four_view_resnet.cc" in m for m in messages)
    assert any("four_view_resnet.r_cc differs" in m for m in messages)
    assert not any("mlo differs" in m for m in messages)
    assert torch.equal(model.four_view_resnet.cc.first_conv.weight, torch.full((16, 1, 7, 7), 0.5))


def test_extra_top_level_entries_of_classifier_files_are_ignored(tmp_path):
    state = _classifier_state(3)
    path = tmp_path / "sample_imageheatmaps_model.p"
    torch.save({"model": state, "epoch": 12}, path)
    model = load_model_file(path)
    assert isinstance(model, ViewSplitClassifier) and model.input_channels == 3
    assert torch.equal(model.fc1_mlo.weight, state["fc1_mlo.weight"])


def test_unknown_file_names_are_refused(tmp_path):
    path = tmp_path / "weights.p"
    torch.save(_patch_state(), path)
    with pytest.raises(CheckpointError, match="not one of the model file names"):
        load_model_file(path)


# --- provenance ---------------------------------------------------------------------


def test_provenance_ids_match_git_and_sha256(tmp_path):
    path = tmp_path / "sample_patch_model.p"
    path.write_bytes(os.urandom(3 << 20) + b"tail")  # several read chunks
    record = file_provenance(path)
    git_blob = subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert record == {
        "file": "sample_patch_model.p",
        "blob_id": git_blob,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "verified": False,
    }


def test_published_blob_ids_are_known():
    for blob_id in (
        "44ce52382562085dcd5becde74fff087b2f31cd4",
        "286ec862ac532d27d3d63ba77ed3a46b9705f53c",
        "312ea110370017eaf9b2ddeb7571d2f99bcfd4d1",
    ):
        assert is_published(blob_id)
    assert not is_published("0" * 40)
    assert UNVERIFIED_WARNING == (
        "UNVERIFIED WEIGHTS — not the published model; predictions are not clinical"
    )


def test_classify_never_imports_torchvision_which_only_the_patch_network_needs():
    probe = "import sys, stages.classify; print('torchvision' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
