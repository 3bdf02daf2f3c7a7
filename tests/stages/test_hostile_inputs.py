"""Hostile inputs at the stage boundaries (issue 15 and what fuzzing found): each is that
exam's clear error, within the stage's memory request, and the exams after it go on.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import TEST_DATA, png_chunk, python_module_cmd, write_exam

from stages.core.errors import DataError
from stages.core.exam import LABELS, exam_from_dict
from stages.io.exam_files import EXAM_JSON, EXAMPLE_EXAM_LIST, load_input_exam
from stages.io.exam_lists import load_exam_list
from stages.io.heatmaps_h5 import read_heatmap, write_heatmap
from stages.io.images import read_greyscale_png
from stages.io.pfs import read_json
from stages.nets.checkpoints import CheckpointError, check_fits, read_patch_state_dict
from stages.report.predictions import parse_predictions
from stages.table import CROP, GENERATE_HEATMAPS, stage

FUZZ_REGRESSIONS = TEST_DATA / "fuzz-regressions"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIB = 1 << 20


def idat_claiming_2_gib() -> bytes:
    """65 bytes: a valid 16-bit greyscale header, then an IDAT whose length says ~2 GiB."""
    header = struct.pack(">IIBBBBB", 2000, 2000, 16, 0, 0, 0, 0)
    data = PNG_SIGNATURE + png_chunk(b"IHDR", header)
    data += png_chunk(b"IDAT", b"\x78\x9c\x63\x00\x00\x00\x01\x00", length=0x7FFF0000)
    data += png_chunk(b"IEND", b"")
    assert len(data) == 65
    return data


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def billion_laughs() -> bytes:
    """~200 bytes of pickle: 9 levels of lists, each holding the one below ten times."""
    data = b"\x80\x04\x8c\x03lol\x94"  # memo 0: "lol"
    for level in range(9):
        data += b"(" + (b"h" + bytes([level])) * 10 + b"l\x94"
    return data + b"."


# Runs argv[1:] as its only child; prints that child's peak RSS (bytes) as its last line.
PEAK_RSS_OF_CHILD = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(code)"
)


# Kubernetes' decimal suffixes, as the stage table writes memory requests.
UNITS = {"M": 10**6, "G": 10**9}


def memory_request_bytes(name: str) -> int:
    memory = stage(name).resources.memory
    return int(memory[:-1]) * UNITS[memory[-1]]


def run_measured(command: list[str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `command`: its result and its own peak RSS in bytes."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_OF_CHILD, *command],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, int(result.stdout.split()[-1])


def test_png_whose_idat_claims_2_gib_is_refused_before_decoding(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(idat_claiming_2_gib())
    with pytest.raises(DataError, match=r"chunk b'IDAT' at byte 33 claims 2,147,418,112 bytes"):
        read_greyscale_png(path)


def test_png_larger_than_its_header_allows_is_refused_unread(tmp_path):
    path = tmp_path / "x.png"
    header = struct.pack(">IIBBBBB", 4, 4, 16, 0, 0, 0, 0)
    padding = png_chunk(b"tEXt", b"x" * (2 * MIB))  # 2 MiB of text beside 32 bytes of pixels
    path.write_bytes(PNG_SIGNATURE + png_chunk(b"IHDR", header) + padding)
    with pytest.raises(DataError, match="larger than its header's image can be"):
        read_greyscale_png(path)


def test_json_nested_1000_deep_is_refused_before_parsing(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(nested_json(1000))
    with pytest.raises(ValueError, match="nested 1,000 levels deep, more than the 32 allowed"):
        read_json(path)
    path.write_text('{"a": ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]}')  # in a string
    assert read_json(path) == {"a": ["[" * 42]}


def test_messages_never_repeat_an_unbounded_value():
    exam = {"horizontal_flip": ["NO"] * 1_000_000, "L-CC": ["a"]}
    with pytest.raises(DataError) as refused:
        exam_from_dict("e", exam)
    assert len(str(refused.value)) < 300
    assert "'NO', 'NO'" in str(refused.value)
    looped: list = []
    looped.append(looped)
    with pytest.raises(DataError, match=r"\[\[\[\[\.\.\.\]\]\]\]"):
        exam_from_dict("e", {"horizontal_flip": "NO", "L-CC": looped})


def test_image_name_too_long_for_a_file_is_refused(tmp_path):
    # Before: a 300-character name made opening the image raise ENAMETOOLONG: a crash.
    exam_dir = tmp_path / "e"
    exam_dir.mkdir()
    exam = {"horizontal_flip": "NO"} | {view: [f"{view}x"] for view in ("R-CC", "L-MLO", "R-MLO")}
    (exam_dir / EXAM_JSON).write_text(json.dumps({**exam, "L-CC": ["a" * 300]}))
    with pytest.raises(DataError, match="at most 200 characters"):
        load_input_exam(exam_dir)


HOSTILE_PICKLES = {
    # The examples, each of which escaped the restricted unpickler.
    "unknown codec (LookupError)": (
        b"cbuiltins\nstr\n(C\x01xX\x0d\x00\x00\x00no-such-codectR.",
        "refused to load builtins.str",
    ),
    "huge float (OverflowError)": (
        b"cbuiltins\nfloat\n(L" + b"9" * 400 + b"L\ntR.",
        "refused to load builtins.float",
    ),
    "memo index past sys.maxsize": (
        b"(lp99999999999999999999999\n.",
        "memo index <77-bit integer> at byte 2 is beyond the 1 values made so far",
    ),
    "12-byte BINBYTES8 (MemoryError)": (
        b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b".",
        "bytes8",
    ),
    "deep list (RecursionError)": (
        b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".",
        "nested more than 32 levels deep",
    ),
    "billion laughs": (billion_laughs(), "more than 1,000,000 values, counting each reference"),
    # Found here: a dict key nested 300,000 tuples deep crashed the interpreter (SIGSEGV,
    # hashing recursed in C), before any check of the result could run.
    "deep tuple as a dict key (SIGSEGV)": (
        b"\x80\x02}" + b")" + b"\x85" * 300_000 + b"Ns.",
        "a dict key that is a list, dict or tuple",
    ),
    # A number crop would fail to write as JSON (over Python's 4,300 digits).
    "800,000-bit number": (
        b"\x80\x02\x8b" + struct.pack("<i", 100_000) + b"\x01" * 100_000 + b".",
        "a 799,993-bit number at byte 2",
    ),
    "one string referenced a thousand times": (
        b"\x80\x04\x8d" + struct.pack("<Q", MIB) + b"x" * MIB + b"\x94(" + b"h\x00" * 1000 + b"l.",
        "more than 16,777,216 characters of strings",
    ),
    "bytes, which JSON cannot hold": (pickle.dumps([b"x"], protocol=3), "SHORT_BINBYTES"),
    "a set": (pickle.dumps([{"x"}], protocol=4), "EMPTY_SET"),
    # MARK, POP_MARK, ... 4 MB of opcodes that make nothing: refused at the bound, not walked.
    "opcodes that make nothing": (
        b"\x80\x02" + b"(1" * 2_000_001 + b"].",
        "more than 4,000,000 opcodes",
    ),
    "an append without a list": (b"\x80\x02}Na.", "APPEND at byte 4 needs a list under it"),
    # The C unpickler loses its place when an opcode runs past its frame (fuzzing found a
    # frame inside a frame: TypeError escaped); the Python one refuses, and so do we.
    "a string running past its frame": (
        b"\x80\x04\x95" + struct.pack("<Q", 16) + b"]\x94}\x94\x8c\x04L-CC\x94]\x94"
        b"\x8c\x060_L_CC\x94asa.",
        "the opcode at byte 24 runs past the end of its frame, at byte 27",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_PICKLES))
def test_hostile_exam_list_is_that_files_clear_error(tmp_path, case):
    data, words = HOSTILE_PICKLES[case]
    path = tmp_path / "exam_list.pkl"
    path.write_bytes(data)
    with pytest.raises(DataError) as refused:
        load_exam_list(path)
    message = str(refused.value)
    assert message.startswith("exam_list.pkl: cannot read the exam list: ")
    assert words in message
    assert len(message) < 400


def test_genuine_exam_lists_of_every_protocol_still_load(tmp_path):
    views = {"L-CC": ["1_L_CC"], "R-CC": ["1_R_CC"], "L-MLO": ["1_L_MLO"], "R-MLO": ["1_R_MLO"]}
    exam = {"horizontal_flip": "NO", **views, "best_center": {v: [(10, 2)] for v in views}}
    exams = [exam, {**exam, "horizontal_flip": "YES"}, {"shared": views, "again": views}]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"list-{protocol}.pkl"
        path.write_bytes(pickle.dumps(exams, protocol=protocol))
        assert load_exam_list(path) == exams, protocol


def test_crop_goes_on_after_hostile_exams_within_its_memory_request(pfs):
    data = pfs / "sample_data"
    write_exam(data, "a_deep_json")
    (data / "a_deep_json" / EXAM_JSON).write_text(nested_json(1000))
    write_exam(data, "b_png_claims_2_gib")
    (data / "b_png_claims_2_gib" / "b_png_claims_2_gib_L_CC.png").write_bytes(idat_claiming_2_gib())
    write_exam(data, "c_laughs", layout="example")
    (data / "c_laughs" / EXAMPLE_EXAM_LIST).write_bytes(billion_laughs())
    write_exam(data, "d_deep_key", layout="example")
    (data / "d_deep_key" / EXAMPLE_EXAM_LIST).write_bytes(
        HOSTILE_PICKLES["deep tuple as a dict key (SIGSEGV)"][0]
    )
    write_exam(data, "e_good")

    crop, peak = run_measured(python_module_cmd("stages.crop", "--pfs", str(pfs)))
    assert crop.returncode == 0, crop.stderr
    assert "Traceback" not in crop.stderr
    out = pfs / "out"
    reasons = {
        "a_deep_json": (EXAM_JSON, "nested 1,000 levels deep"),
        "b_png_claims_2_gib": ("b_png_claims_2_gib_L_CC.png", "claims 2,147,418,112 bytes"),
        "c_laughs": (EXAMPLE_EXAM_LIST, "counting each reference"),
        "d_deep_key": (EXAMPLE_EXAM_LIST, "a dict key that is a list, dict or tuple"),
    }
    for exam_id, (file, words) in reasons.items():
        record = json.loads((out / exam_id / "error.json").read_text())
        assert record["stage"] == CROP and record["file"] == file, record
        assert words in record["reason"], record
    assert (out / "e_good" / "cropped_exam_list.json").is_file()
    assert peak < memory_request_bytes(CROP), f"crop peaked at {peak / MIB:.0f} MiB"


HEATMAP_SHAPE = (20, 10)  # (H, W); stored transposed, as (10, 20)


def read_test_heatmap(path: Path) -> np.ndarray:
    return read_heatmap(path, HEATMAP_SHAPE, exam="e", file=path.name)


def heatmap_file(path: Path, build) -> Path:
    with h5py.File(path, "w") as h5:
        build(h5)
    return path


def test_heatmap_declaring_200000_squared_float64_is_refused_unread(tmp_path):
    # 1.4 KB on disk; reading it before its shape was checked asked for 320 GB.
    path = heatmap_file(
        tmp_path / "x.hdf5",
        lambda h5: h5.create_dataset("image", shape=(200_000, 200_000), dtype=np.float64),
    )
    assert path.stat().st_size < 4096
    with pytest.raises(DataError, match="heatmap is 200000x200000 but its image is 20x10"):
        read_test_heatmap(path)


def test_heatmap_links_to_other_files_or_names_are_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere.hdf5"
    write_heatmap(elsewhere, np.ones(HEATMAP_SHAPE, np.float32))
    assert read_test_heatmap(elsewhere).shape == HEATMAP_SHAPE
    # Before: followed, so a heatmap file could make the stage open any file.
    external = heatmap_file(
        tmp_path / "external.hdf5",
        lambda h5: h5.__setitem__("image", h5py.ExternalLink(str(elsewhere), "/image")),
    )
    with pytest.raises(DataError, match="'image' is an external link, not a dataset stored"):
        read_test_heatmap(external)

    def soft(h5):
        h5.create_dataset("data", data=np.ones(HEATMAP_SHAPE[::-1], np.float32))
        h5["image"] = h5py.SoftLink("/data")

    with pytest.raises(DataError, match="'image' is a soft link"):
        read_test_heatmap(heatmap_file(tmp_path / "soft.hdf5", soft))
    # Before: RuntimeError escaped.
    looped = heatmap_file(
        tmp_path / "loop.hdf5", lambda h5: h5.__setitem__("image", h5py.SoftLink("/image"))
    )
    with pytest.raises(DataError, match="'image' is a soft link"):
        read_test_heatmap(looped)


def test_heatmap_data_kept_in_other_files_is_refused(tmp_path):
    raw = tmp_path / "pixels.raw"
    raw.write_bytes(np.ones(200, np.float32).tobytes())
    external_storage = heatmap_file(
        tmp_path / "external-storage.hdf5",
        lambda h5: h5.create_dataset(
            "image", shape=(10, 20), dtype=np.float32, external=[(str(raw), 0, 800)]
        ),
    )
    with pytest.raises(DataError, match="keeps its data in other files"):
        read_test_heatmap(external_storage)

    def virtual(h5):
        layout = h5py.VirtualLayout(shape=(10, 20), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(tmp_path / "elsewhere.hdf5"), "image", (10, 20))
        h5.create_virtual_dataset("image", layout)

    with pytest.raises(DataError, match="keeps its data in other files"):
        read_test_heatmap(heatmap_file(tmp_path / "virtual.hdf5", virtual))


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda h5: h5.create_group("image"), "'image' is a Group, not a dataset"),
        (lambda h5: h5.create_dataset("other", data=np.ones(3)), "no dataset 'image'"),
        (
            lambda h5: h5.create_dataset("image", data=np.ones((10, 20), np.int64)),
            "heatmap values are int64, not 32- or 64-bit floats",
        ),
        (
            lambda h5: h5.create_dataset(
                "image", shape=(10, 20), maxshape=(None, None), chunks=(4000, 4000), dtype="f4"
            ),
            "chunks larger than itself",
        ),
    ],
    ids=["group", "no-image", "int64", "huge-chunks"],
)
def test_heatmap_that_is_not_a_plain_float_dataset_is_refused(tmp_path, build, words):
    with pytest.raises(DataError, match=words):
        read_test_heatmap(heatmap_file(tmp_path / "x.hdf5", build))


def test_heatmap_file_larger_than_its_heatmap_is_refused_unread(tmp_path):
    path = tmp_path / "x.hdf5"
    path.write_bytes(b"\0" * (20 * 10 * 8 + (1 << 20) + 1))
    with pytest.raises(DataError, match="larger than a 20x10 heatmap can be"):
        read_test_heatmap(path)


@pytest.mark.parametrize(
    "path", sorted((FUZZ_REGRESSIONS / "heatmaps_h5").iterdir()), ids=lambda path: path.name
)
def test_heatmap_files_found_by_fuzzing_are_clear_errors(path):
    # overflow-in-fileobj-read: an offset past 2**63 made h5py's file driver raise
    # OverflowError.
    with pytest.raises(DataError, match="unreadable heatmap file"):
        read_test_heatmap(path)


@pytest.mark.parametrize(
    "path", sorted((FUZZ_REGRESSIONS / "exam_list").iterdir()), ids=lambda path: path.name
)
def test_exam_lists_found_by_fuzzing_are_clear_errors(path):
    # frame-length-past-maxsize: a FRAME claiming 2**64 bytes made the unpickler raise
    # OverflowError; frame-inside-a-frame: the C unpickler lost its place, and applied
    # SETITEMS to a list (TypeError).
    with pytest.raises(DataError, match="cannot read the exam list: corrupt pickle"):
        load_exam_list(path)


def torch_file(path: Path, obj, **save_options) -> Path:
    torch.save(obj, path, **save_options)
    return path


def tiny_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 2))


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        (torch.empty(2, 3, device="meta"), "0.weight (no data (meta tensor))"),
        (torch.eye(2, 3).to_sparse(), "0.weight (not a plain dense tensor)"),
        (torch.ones(2, 3, dtype=torch.complex64), "0.weight (torch.complex64 values)"),
    ],
    ids=["meta", "sparse", "complex"],
)
def test_checkpoint_tensors_a_model_cannot_take_are_refused(tmp_path, tensor, words):
    # Before: accepted, then load_state_dict raised NotImplementedError / RuntimeError: a
    # traceback instead of the clear refusal before any exam.
    path = torch_file(tmp_path / "model.p", {"0.weight": tensor, "0.bias": torch.zeros(2)})
    with pytest.raises(
        CheckpointError, match=re.escape(f"model.p: tensors a model cannot take: {words}")
    ):
        read_patch_state_dict(path)


def test_checkpoint_with_integer_weights_does_not_fit(tmp_path):
    path = torch_file(
        tmp_path / "model.p",
        {"0.weight": torch.ones(2, 3, dtype=torch.int64), "0.bias": torch.zeros(2)},
    )
    with pytest.raises(
        CheckpointError, match=r"kinds of numbers that differ: 0\.weight \(file torch\.int64"
    ):
        check_fits(tiny_model(), read_patch_state_dict(path), path)


def test_checkpoint_messages_never_repeat_an_unbounded_key(tmp_path):
    path = torch_file(tmp_path / "model.p", {"k" * 1_000_000: 1, ("t",) * 100_000: torch.ones(1)})
    with pytest.raises(CheckpointError) as refused:
        read_patch_state_dict(path)
    assert len(str(refused.value)) < 500


def test_legacy_checkpoint_claiming_a_huge_storage_is_refused_within_memory(tmp_path):
    saved = tmp_path / "saved.p"
    torch_file(saved, {"w": torch.ones(4)}, _use_new_zipfile_serialization=False)
    data = saved.read_bytes()
    numel = data.index(b"cpuq") + 5  # the storage's element count follows its location
    assert data[numel : numel + 2] == b"K\x04"
    hostile = tmp_path / "model.p"
    hostile.write_bytes(
        data[:numel] + b"\x8a\x05" + (10**12).to_bytes(5, "little") + data[numel + 2 :]
    )
    code = (
        "import sys; from pathlib import Path; "
        "from stages.nets.checkpoints import CheckpointError, read_checkpoint\n"
        "try: read_checkpoint(Path(sys.argv[1]))\n"
        "except CheckpointError as error: print(error, file=sys.stderr)"
    )
    result, peak = run_measured([sys.executable, "-c", code, str(hostile)])
    assert result.returncode == 0, result.stderr
    assert "model.p: not a readable torch checkpoint (" in result.stderr
    assert peak < memory_request_bytes(GENERATE_HEATMAPS), f"{peak / MIB:.0f} MiB"


@pytest.mark.parametrize("value", [10**400, float("nan"), float("inf"), -0.5, "0.5", True])
def test_predictions_that_are_not_probabilities_are_clear_errors(value):
    # Before: a 400-digit integer (valid JSON) raised OverflowError in visualize and summary.
    probabilities = dict.fromkeys(LABELS, 0.5) | {"left_benign": value}
    record = {"exam": "e", "models": {"image": probabilities}}
    with pytest.raises(DataError, match=r'model \'image\': "left_benign" must be a probability'):
        parse_predictions("e", record)


def test_predictions_messages_never_repeat_an_unbounded_value():
    record = {"exam": "x" * 1_000_000, "models": {}}
    with pytest.raises(DataError) as refused:
        parse_predictions("e", record)
    assert len(str(refused.value)) < 300
