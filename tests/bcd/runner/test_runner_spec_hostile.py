"""Hostile spec files: each one is refused by name with what to fix, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runner_sandbox import Sandbox, pfs, pipeline

from bcd.runner.errors import SpecError
from bcd.runner.spec import MAX_SPEC_NESTING, PfsInput, load_spec_file

GOOD = pipeline("crop", pfs("sample_data", "/*"), ["true"])


def spec_text(**changes: Any) -> str:
    return json.dumps({**GOOD, **changes})


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        (spec_text().replace("crop", "caf\xe9").encode("latin-1"), "not UTF-8 text (byte "),
        (spec_text(input=pfs("sample_data", "/[a\\")).encode(), "glob '/[a\\\\' is not valid"),
        (spec_text().replace("{", '{"datum_tries": ' + "9" * 5000 + ",", 1).encode(),
         "number of thousands of digits"),
        (("[" * 5000 + "]" * 5000).encode(), f"nested more than {MAX_SPEC_NESTING} levels"),
        (('{"a":' * 200 + "1" + "}" * 200).encode(), f"nested more than {MAX_SPEC_NESTING} levels"),
        (spec_text(salt="\ud800").encode(), "lone surrogate"),
    ],
)  # fmt: skip
def test_bcd_run_refuses_a_hostile_spec_file(sandbox: Sandbox, content: bytes, refusal: str):
    sandbox.repo("sample_data", {"a": "1"})
    sandbox.pipelines.mkdir()
    (sandbox.pipelines / "bad.json").write_bytes(content)
    done = sandbox.cli()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(sandbox.pipelines / "bad.json") in done.stderr
    assert refusal in done.stderr
    assert len(done.stderr) < 1000  # no hostile value echoed whole


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"pipeline": []}, "'pipeline' must be an object"),
        ({"pipeline": {"name": "crop", "project": {"name": 5}}}, "pipeline.project.name 5"),
        ({"datum_tries": 1e300}, "datum_tries is out of range"),
        ({"datum_tries": "9" * 30}, "datum_tries must be an integer"),
        ({"datum_set_spec": {"number": 2**63}}, "datum_set_spec.number is out of range"),
        ({"datum_timeout": "x" * 5000}, 'such as "600s", not \'xxxx'),
        ({"transform": {"cmd": ["a\0b"]}}, "transform.cmd must not hold NUL"),
        ({"transform": {"cmd": ["true"], "env": {"A=B": "1"}}}, "not a usable variable"),
        ({"transform": {"cmd": ["true"], "env": {"A": "\0"}}}, "not a usable variable"),
        ({"input": {"pfs": []}}, "input.pfs must be an object"),
        ({"input": {"pfs": {"repo": "x", "glob": "/" + "(" * 40}}}, "nest more than"),
    ],
)
def test_wrong_types_and_values_are_refused(tmp_path: Path, changes: dict, refusal: str):
    path = tmp_path / "bad.json"
    path.write_text(spec_text(**changes))
    with pytest.raises(SpecError) as raised:
        load_spec_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path} (spec 1): ")
    assert refusal in message
    assert len(message) < 400


def test_a_glob_ending_in_a_lone_backslash_is_read(tmp_path: Path):
    # `(` `?` `]` `?` then a lone '\': once an IndexError in the glob lexer.
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(pipeline("crop", pfs("sample_data", "(?]?\\"), ["true"])))
    spec = load_spec_file(path)[0]
    assert spec.input == PfsInput("sample_data", "sample_data", "master", "(?]?\\")
