"""The networks: SAME padding facts, layouts, output shapes, and numbers from the reference.

tests/data/nets_expected.json holds outputs of the NYU reference's own model classes on
the seed-0 demo weights and seeded inputs (its "note" says how they were made).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from helpers import TEST_DATA
from torch import nn

from bcd.models.demo_weights import write_demo_weights
from stages.nets.checkpoints import load_patch_classifier, load_view_split_classifier
from stages.nets.densenet import (
    PatchDenseNet121,
    SamePadConv2d,
    SamePadMaxPool2d,
    pad_same,
    same_padding,
)
from stages.nets.resnet22 import ResNet22
from stages.nets.view_split import ViewSplitClassifier, label_probabilities

EXPECTED = json.loads((TEST_DATA / "nets_expected.json").read_text())
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def seeded_input(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The input recipe of nets_expected.json: PCG64(seed).random(shape) * 4 - 2, float32."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return torch.from_numpy((rng.random(shape) * 4 - 2).astype(np.float32))


def seeded_views(seed: int, channels: int, sizes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    rng = np.random.Generator(np.random.PCG64(seed))
    return {
        view: torch.from_numpy(
            (rng.random((1, channels, *sizes[view.split("-")[1]])) * 4 - 2).astype(np.float32)
        )
        for view in VIEWS
    }


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo_weights")
    write_demo_weights(directory, EXPECTED["weights_seed"])
    return directory


@pytest.fixture(scope="module")
def plain_patch_model() -> PatchDenseNet121:
    return PatchDenseNet121().eval()


# --- SAME padding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (256, 7, 2, (2, 3)),  # even size, stride 2: TF pads one more at the back
        (255, 7, 2, (3, 3)),
        (257, 7, 2, (3, 3)),
        (128, 3, 2, (0, 1)),
        (129, 3, 2, (1, 1)),
        (64, 3, 1, (1, 1)),
        (64, 1, 1, (0, 0)),
        (5, 1, 2, (0, 0)),
    ],
)
def test_same_padding_matches_tensorflow_rule(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


@pytest.mark.parametrize("size", [255, 256, 257])
def test_same_padding_output_is_ceil_of_size_over_stride(size):
    x = torch.ones(1, 1, size, size)
    for kernel, stride in ((7, 2), (3, 2), (3, 1), (1, 1)):
        out = F.max_pool2d(pad_same(x, (kernel, kernel), (stride, stride)), kernel, stride)
        assert out.shape[-2:] == (-(-size // stride), -(-size // stride))


def test_same_pad_conv_pads_zeros_front_then_back():
    conv = nn.Conv2d(1, 1, 7, stride=2, padding=3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(49.0).view(1, 1, 7, 7))
    same = SamePadConv2d.like(conv)
    x = torch.arange(256.0 * 250).view(1, 1, 256, 250) / 1000
    # rows: 256 even -> (2, 3); cols: 250 even -> (2, 3)
    expected = F.conv2d(F.pad(x, (2, 3, 2, 3)), conv.weight, stride=2)
    assert same.padding == (0, 0)
    assert same.weight is conv.weight
    assert torch.equal(same(x), expected)


def test_same_pad_conv_with_symmetric_padding_equals_explicit_zero_padding():
    conv = nn.Conv2d(4, 3, 3, padding=5, bias=True)  # its own padding must be ignored
    same = SamePadConv2d.like(conv)
    x = seeded_input(5, (2, 4, 33, 20))
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1)), conv.weight, conv.bias)
    assert same(x).shape == (2, 3, 33, 20)
    torch.testing.assert_close(same(x), expected, rtol=0, atol=1e-6)


def test_swap_axes_exchanges_height_and_width_padding():
    x = torch.ones(1, 1, 256, 255)  # rows (2, 3), cols (3, 3)
    assert pad_same(x, (7, 7), (2, 2)).shape[-2:] == (261, 261)
    assert pad_same(x, (7, 7), (2, 2), swap_axes=True).shape[-2:] == (262, 260)


# --- patch classifier ---------------------------------------------------------------


def test_patch_densenet_keeps_torchvision_names_and_shapes():
    ours = PatchDenseNet121().state_dict()
    plain = torchvision.models.densenet121(num_classes=4).state_dict()
    assert list(ours) == list(plain)
    assert all(ours[key].shape == plain[key].shape for key in plain)


def test_patch_densenet_swaps_convs_and_max_pool_but_not_average_pools():
    model = PatchDenseNet121()
    kinds = [type(m) for m in model.modules()]
    assert nn.Conv2d not in kinds and nn.MaxPool2d not in kinds
    assert kinds.count(SamePadConv2d) == 120
    assert kinds.count(SamePadMaxPool2d) == 1
    assert kinds.count(nn.AvgPool2d) == 3
    assert all(m.padding == (0, 0) for m in model.modules() if isinstance(m, SamePadConv2d))


@pytest.mark.parametrize(
    ("size", "after_pool0", "final"),
    [(256, 64, 8), (255, 64, 8), (257, 65, 8), (300, 75, 9)],
)
def test_patch_densenet_feature_map_sizes(plain_patch_model, size, after_pool0, final):
    model = plain_patch_model
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        stem = model.features[:4](x)  # conv0, norm0, relu0, pool0
        assert stem.shape == (1, 64, after_pool0, after_pool0)
        assert model.features(x).shape == (1, 1024, final, final)
        assert model(x).shape == (1, 4)


def test_patch_densenet_matches_reference_numbers(demo_dir):
    model = load_patch_classifier(demo_dir / "sample_patch_model.p")
    case = EXPECTED["patch_square"]
    x = seeded_input(case["input_seed"], tuple(case["shape"])).repeat(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)
    np.testing.assert_allclose(logits.numpy(), case["logits"], atol=1e-5, rtol=0)


def test_patch_densenet_non_square_matches_reference_with_swapped_axes(demo_dir):
    case = EXPECTED["patch_non_square"]
    x = seeded_input(case["input_seed"], tuple(case["shape"])).repeat(1, 3, 1, 1)
    swapped = load_patch_classifier(demo_dir / "sample_patch_model.p", swap_axes=True)
    tensorflow_like = load_patch_classifier(demo_dir / "sample_patch_model.p")
    with torch.no_grad():
        np.testing.assert_allclose(swapped(x).numpy(), case["logits"], atol=1e-5, rtol=0)
        assert tensorflow_like.features(x).shape[-2:] == (
            8,
            10,
        )  # 331 -> 166 -> 83 -> 41 -> 20 -> 10
        assert not np.allclose(tensorflow_like(x).numpy(), case["logits"], atol=1e-3)


# --- view-split classifier ----------------------------------------------------------


def test_view_split_aliases_are_the_angle_trunks():
    model = ViewSplitClassifier(1)
    trunks = model.four_view_resnet
    assert trunks.l_cc is trunks.cc and trunks.r_cc is trunks.cc
    assert trunks.l_mlo is trunks.mlo and trunks.r_mlo is trunks.mlo
    assert trunks.cc is not trunks.mlo
    state = model.state_dict()
    for alias, trunk in (("l_cc", "cc"), ("r_cc", "cc"), ("l_mlo", "mlo"), ("r_mlo", "mlo")):
        for key in ("first_conv.weight", "layer_list.4.1.conv2.weight", "final_bn.running_var"):
            alias_tensor = state[f"four_view_resnet.{alias}.{key}"]
            assert alias_tensor.data_ptr() == state[f"four_view_resnet.{trunk}.{key}"].data_ptr()


@pytest.mark.parametrize("channels", [1, 3])
def test_view_split_layout_of_published_checkpoints(channels):
    state = ViewSplitClassifier(channels).state_dict()
    prefixes = ("cc", "mlo", "l_cc", "l_mlo", "r_cc", "r_mlo")
    order = [key.split(".")[1] for key in state if key.startswith("four_view_resnet.")]
    assert list(dict.fromkeys(order)) == list(prefixes)
    assert state["four_view_resnet.cc.first_conv.weight"].shape == (16, channels, 7, 7)
    assert state["four_view_resnet.mlo.layer_list.0.0.downsample.0.weight"].shape == (16, 16, 1, 1)
    assert state["four_view_resnet.mlo.layer_list.4.0.downsample.0.weight"].shape == (
        256,
        128,
        1,
        1,
    )
    assert "four_view_resnet.cc.layer_list.0.1.downsample.0.weight" not in state
    assert state["four_view_resnet.r_mlo.final_bn.running_mean"].shape == (256,)
    assert state["fc1_cc.weight"].shape == (512, 512)
    assert state["output_layer_mlo.fc_layer.weight"].shape == (8, 512)
    assert list(state)[-8:] == [
        "fc1_cc.weight",
        "fc1_cc.bias",
        "fc1_mlo.weight",
        "fc1_mlo.bias",
        "output_layer_cc.fc_layer.weight",
        "output_layer_cc.fc_layer.bias",
        "output_layer_mlo.fc_layer.weight",
        "output_layer_mlo.fc_layer.bias",
    ]
    per_trunk = [key for key in state if key.startswith("four_view_resnet.cc.")]
    assert len(per_trunk) == 131  # 26 conv weights + 21 batch norms x 5 tensors


def test_resnet22_feature_map_sizes():
    # 7x7/2 unpadded conv, 3x3/2 unpadded pool, then stride-2 padded 3x3 convs.
    trunk = ResNet22(1).eval()
    with torch.no_grad():
        assert trunk(torch.zeros(1, 1, 100, 80)).shape == (1, 256, 2, 2)
        assert trunk(torch.zeros(2, 1, 107, 99)).shape == (2, 256, 2, 2)
        assert trunk(torch.zeros(1, 1, 300, 200)).shape == (1, 256, 5, 3)


def test_view_split_outputs_are_log_softmax_pairs():
    model = ViewSplitClassifier(3).eval()
    views = seeded_views(7, 3, {"CC": [120, 100], "MLO": [130, 90]})
    views = {view: torch.cat([x, -x]) for view, x in views.items()}  # batch of 2
    with torch.no_grad():
        out = model(views)
    assert set(out) == {"CC", "MLO"}
    for log_probs in out.values():
        assert log_probs.shape == (2, 4, 2)
        np.testing.assert_allclose(log_probs.exp().sum(-1).numpy(), 1.0, atol=1e-6)
    probs = label_probabilities(out)
    assert probs.shape == (2, 4)
    mean = (out["CC"][..., 1].exp() + out["MLO"][..., 1].exp()) / 2
    np.testing.assert_allclose(probs.numpy(), mean.numpy(), atol=1e-7)


def test_view_split_left_and_right_share_weights_but_not_slots():
    # Swapping the L and R images of an angle swaps the halves of the concatenated
    # features, so the outputs change: the head knows which side is which.
    model = ViewSplitClassifier(1).eval()
    views = seeded_views(8, 1, {"CC": [120, 100], "MLO": [130, 90]})
    swapped = {**views, "L-CC": views["R-CC"], "R-CC": views["L-CC"]}
    with torch.no_grad():
        a, b = model(views), model(swapped)
    assert torch.equal(a["MLO"], b["MLO"])
    assert not torch.allclose(a["CC"], b["CC"])


@pytest.mark.parametrize("key", ["image", "imageheatmaps"])
def test_view_split_matches_reference_numbers(demo_dir, key):
    case = EXPECTED[key]
    model = load_view_split_classifier(demo_dir / case["file"], case["channels"])
    views = seeded_views(case["input_seed"], case["channels"], case["sizes"])
    with torch.no_grad():
        out = model(views)
    for angle in ("CC", "MLO"):
        np.testing.assert_allclose(
            out[angle].numpy(), case["log_softmax"][angle], atol=1e-5, rtol=0
        )
    np.testing.assert_allclose(
        label_probabilities(out).numpy(), case["label_probabilities"], atol=1e-5, rtol=0
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_models_run_on_cuda_like_on_cpu(demo_dir):
    torch.backends.cudnn.allow_tf32 = False  # exact float32 convolutions for comparison
    patch = load_patch_classifier(demo_dir / "sample_patch_model.p", "cuda")
    case = EXPECTED["patch_square"]
    x = seeded_input(case["input_seed"], tuple(case["shape"])).repeat(1, 3, 1, 1)
    with torch.no_grad():
        logits = patch(x.cuda()).cpu()
    np.testing.assert_allclose(logits.numpy(), case["logits"], atol=1e-4, rtol=0)
    case = EXPECTED["imageheatmaps"]
    model = load_view_split_classifier(demo_dir / case["file"], 3, torch.device("cuda"))
    views = seeded_views(case["input_seed"], 3, case["sizes"])
    with torch.no_grad():
        out = model({view: x.cuda() for view, x in views.items()})
    np.testing.assert_allclose(
        label_probabilities(out).cpu().numpy(), case["label_probabilities"], atol=1e-4, rtol=0
    )
