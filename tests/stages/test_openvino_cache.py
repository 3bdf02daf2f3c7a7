"""The OpenVINO conversion cache: same outputs from the cache, keyed on what the conversion
reads, damaged entries and unwritable folders never used, the folder bounded.

A small real network (convolution, batch norm, linear) is converted by the real converter;
the stage-level run with the real patch DenseNet is in test_stage_with_the_cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from helpers import REPO, run_stage_on, write_exam
from torch import nn

from bcd.models.demo_weights import write_demo_weights
from stages.nets import openvino_backend, openvino_cache
from stages.nets.openvino_backend import cached_conversion, compile_for_cpu, on_openvino
from stages.nets.runtime import EXACT, OPENVINO_CACHE_ENV, openvino_cache_folder
from stages.table import CROP, EXTRACT_CENTERS, GENERATE_HEATMAPS, MODELS, SAMPLE_DATA

SHAPE = (2, 3, 24, 24)
SOURCES = [Path(openvino_cache.__file__)]


def small_network(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    return model.eval()


def outputs(converted: ov.Model) -> np.ndarray:
    compiled = compile_for_cpu(converted, EXACT, threads=1)
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    return np.array(compiled.create_infer_request().infer({0: x})[0])


def entries(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if (path / openvino_cache.MANIFEST).is_file())


def test_the_cached_network_gives_the_converted_ones_outputs_bit_for_bit(tmp_path, capsys):
    model = small_network(1)
    fresh = cached_conversion(model, SHAPE, None, "bcd test")
    first = cached_conversion(model, SHAPE, tmp_path, "bcd test")
    assert "converted in" in capsys.readouterr().err
    [entry] = entries(tmp_path)
    second = cached_conversion(model, SHAPE, tmp_path, "bcd test")
    assert f"from the cache ({entry})" in capsys.readouterr().err
    assert outputs(fresh).tobytes() == outputs(first).tobytes() == outputs(second).tobytes()
    # OpenVINO's save_model compresses weights to fp16 unless told not to; that would show.
    ov.save_model(fresh, tmp_path / "fp16.xml")
    fp16 = ov.Core().read_model(tmp_path / "fp16.xml")
    assert outputs(fp16).tobytes() != outputs(fresh).tobytes()
    manifest = json.loads((entry / openvino_cache.MANIFEST).read_text())
    assert manifest["key"] == entry.name and manifest["input_shape"] == list(SHAPE)


def test_the_key_follows_weights_shape_and_sources(tmp_path):
    key = openvino_cache.conversion_key(small_network(1), SHAPE, SOURCES)
    assert openvino_cache.conversion_key(small_network(1), SHAPE, SOURCES) == key
    assert openvino_cache.conversion_key(small_network(2), SHAPE, SOURCES) != key
    assert openvino_cache.conversion_key(small_network(1), (1, 3, 24, 24), SOURCES) != key
    edited = tmp_path / "converter.py"
    edited.write_text("# another converter\n")
    assert openvino_cache.conversion_key(small_network(1), SHAPE, [*SOURCES, edited]) != key
    # Running statistics are state too: a folded or re-estimated batch norm is another net.
    model = small_network(1)
    with torch.no_grad():
        model[1].running_var.mul_(2)
    assert openvino_cache.conversion_key(model, SHAPE, SOURCES) != key


def test_a_damaged_entry_is_said_converted_again_and_replaced(tmp_path, capsys):
    model = small_network(1)
    expected = outputs(cached_conversion(model, SHAPE, tmp_path, "bcd test"))
    [entry] = entries(tmp_path)
    weights = entry / openvino_cache.BIN
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    capsys.readouterr()
    again = cached_conversion(model, SHAPE, tmp_path, "bcd test")
    err = capsys.readouterr().err
    assert f"bcd test: {entry}: its files do not match its manifest" in err
    assert "converting the network again" in err and "converted in" in err
    assert outputs(again).tobytes() == expected.tobytes()
    assert outputs(cached_conversion(model, SHAPE, tmp_path, "bcd test")).tobytes() == (
        expected.tobytes()
    )
    (entry / openvino_cache.MANIFEST).write_text("{not json")
    cached_conversion(model, SHAPE, tmp_path, "bcd test")
    assert "unreadable cache entry" in capsys.readouterr().err
    assert entries(tmp_path) == [entry]
    assert [path.name for path in tmp_path.iterdir()] == [entry.name]  # no staging left


def test_an_unwritable_folder_is_said_and_the_network_converted_anyway(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    network = on_openvino(small_network(1), SHAPE, EXACT, 1, not_a_folder / "cache", "bcd test")
    err = capsys.readouterr().err
    assert "cannot write the OpenVINO cache" in err
    assert f"set {OPENVINO_CACHE_ENV} to a writable folder, or to 'off'" in err
    x = torch.zeros(SHAPE)
    with torch.inference_mode():
        assert network(x).shape == (2, 4)


# A folder that fills up mid-write, as a full disk or a quota does: the file-size limit
# makes every write past 512 bytes fail (EFBIG) in a real process of its own.
FULL_DISK_RUN = """
import resource, signal, sys
from pathlib import Path
import torch
from torch import nn
from stages.nets.openvino_backend import on_openvino
from stages.nets.runtime import EXACT
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (512, resource.RLIM_INFINITY))
model = nn.Conv2d(3, 8, 3).eval()
network = on_openvino(model, (2, 3, 24, 24), EXACT, 1, Path(sys.argv[1]), "bcd test")
with torch.inference_mode():
    print(tuple(network(torch.zeros(2, 3, 24, 24)).shape))
"""


def test_a_folder_that_fills_up_is_said_and_leaves_no_partial_entry(tmp_path):
    cache = tmp_path / "cache"
    completed = subprocess.run(
        [sys.executable, "-c", FULL_DISK_RUN, str(cache)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "(2, 8, 22, 22)"
    assert f"{cache}: cannot write the OpenVINO cache" in completed.stderr
    assert "is its disk full?" in completed.stderr
    assert f"set {OPENVINO_CACHE_ENV} to a writable folder, or to 'off'" in completed.stderr
    assert list(cache.iterdir()) == []  # neither an entry nor its staging folder


def test_least_recently_used_entries_beyond_the_bound_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(openvino_cache, "MAX_ENTRIES", 2)
    for seed in (1, 2, 3):
        cached_conversion(small_network(seed), SHAPE, tmp_path, "bcd test")
    kept = {path.name for path in entries(tmp_path)}
    backend = [Path(openvino_backend.__file__)]
    keys = {
        seed: openvino_cache.conversion_key(small_network(seed), SHAPE, backend)
        for seed in (1, 2, 3)
    }
    assert kept == {keys[2], keys[3]}


def test_where_the_cache_is():
    assert openvino_cache_folder({OPENVINO_CACHE_ENV: "/data/ov"}) == Path("/data/ov")
    assert openvino_cache_folder({OPENVINO_CACHE_ENV: "off"}) is None
    assert openvino_cache_folder({OPENVINO_CACHE_ENV: ""}) is None
    assert openvino_cache_folder({"XDG_CACHE_HOME": "/x"}) == Path("/x/bcd/openvino")
    home = Path(os.path.expanduser("~"))
    assert openvino_cache_folder({}) == home / ".cache" / "bcd" / "openvino"


def test_stage_with_the_cache_gives_the_same_heatmaps(tmp_path: Path):
    """generate_heatmaps on OpenVINO, twice with one cache folder: converted, then read
    from the cache, with the same bytes both times (the real patch DenseNet)."""
    pfs = tmp_path / "pfs"
    write_exam(pfs / SAMPLE_DATA, "exam-1", size=(560, 480))
    write_demo_weights(pfs / MODELS)
    cache = tmp_path / "cache"
    env = {**os.environ, OPENVINO_CACHE_ENV: str(cache), "BCD_TORCH_THREADS": "2"}
    for stage in (CROP, EXTRACT_CENTERS):
        run_stage_on(f"stages.{stage}", pfs, env=env, timeout=600)
        (pfs / "out").rename(pfs / stage)
    logs, heatmaps = [], []
    for run in ("first", "second"):
        logs.append(
            run_stage_on(
                f"stages.{GENERATE_HEATMAPS}", pfs, "--backend", "openvino", env=env, timeout=900
            )
        )
        out = pfs / "out" / "exam-1"
        heatmaps.append({str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.hdf5")})
        (pfs / "out").rename(tmp_path / run)
    [entry] = entries(cache)
    assert "converted in" in logs[0] and f"kept in {entry}" in logs[0]
    assert f"OpenVINO PatchDenseNet121 for (8, 3, 256, 256) from the cache ({entry})" in logs[1]
    assert len(heatmaps[0]) == 8 and heatmaps[0] == heatmaps[1]  # 4 images x 2 classes
