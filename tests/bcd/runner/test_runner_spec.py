"""Reading spec files as pachctl does: several specs per file, snake/camel keys, strictness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bcd.runner.errors import SpecError
from bcd.runner.spec import (
    CompositeInput,
    DatumSetSpec,
    PfsInput,
    canonical_keys,
    load_spec_dir,
    load_spec_file,
)

SNAKE = {
    "pipeline": {"name": "crop"},
    "input": {"pfs": {"repo": "sample_data", "glob": "/(*)", "join_on": "$1", "outer_join": True}},
    "transform": {"cmd": ["true"], "env": {"BCD_DEVICE": "cpu"}, "accept_return_code": [3]},
    "datum_tries": "5",
    "datum_timeout": "1.5s",
    "resource_limits": {"gpu": {"type": "nvidia.com/gpu", "number": 1}},
}
CAMEL = {
    "pipeline": {"name": "crop"},
    "input": {"pfs": {"repo": "sample_data", "glob": "/(*)", "joinOn": "$1", "outerJoin": True}},
    "transform": {"cmd": ["true"], "env": {"BCD_DEVICE": "cpu"}, "acceptReturnCode": [3]},
    "datumTries": 5,
    "datumTimeout": "1.5s",
    "resourceLimits": {"gpu": {"type": "nvidia.com/gpu", "number": "1"}},
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_snake_and_camel_case_give_the_same_pipeline(tmp_path: Path):
    snake = load_spec_file(write(tmp_path, "a.json", json.dumps(SNAKE)))[0]
    camel = load_spec_file(write(tmp_path, "b.json", json.dumps(CAMEL)))[0]
    assert (
        snake.input
        == camel.input
        == PfsInput(
            name="sample_data",
            repo="sample_data",
            branch="master",
            glob="/(*)",
            join_on="$1",
            outer_join=True,
        )
    )
    for spec in (snake, camel):
        assert spec.datum_tries == 5
        assert spec.datum_timeout == 1.5
        assert spec.gpus_per_datum == 1
        assert spec.transform.accept_return_code == {3}
        assert spec.transform.env == {"BCD_DEVICE": "cpu"}  # map keys are data, kept as is


def test_datum_batching_and_datum_set_spec_are_read(tmp_path: Path):
    batched = {
        **CAMEL,
        "transform": {"cmd": ["true"], "datumBatching": True},
        "datumSetSpec": {"sizeBytes": "1000", "perWorker": 2},
    }
    spec = load_spec_file(write(tmp_path, "a.json", json.dumps(batched)))[0]
    assert spec.transform.datum_batching
    assert spec.datum_set_spec == DatumSetSpec(size_bytes=1000, per_worker=2)
    plain = load_spec_file(write(tmp_path, "b.json", json.dumps(SNAKE)))[0]
    assert not plain.transform.datum_batching
    assert plain.datum_set_spec == DatumSetSpec()


def test_map_keys_are_not_renamed():
    assert canonical_keys({"transform": {"env": {"myVar": "1"}}, "datumTries": 2}) == {
        "transform": {"env": {"myVar": "1"}},
        "datum_tries": 2,
    }


def test_a_file_may_hold_a_list_or_several_documents(tmp_path: Path):
    first = {**SNAKE, "pipeline": {"name": "one"}}
    second = {**SNAKE, "pipeline": {"name": "two"}}
    third = {**SNAKE, "pipeline": {"name": "three"}, "$schema": "ignored"}
    listed = write(tmp_path, "list.json", json.dumps([first, second]))
    several = write(
        tmp_path,
        "docs.json",
        json.dumps(first) + "\n" + json.dumps(second) + "\n---\n" + json.dumps(third),
    )
    assert [spec.name for spec in load_spec_file(listed)] == ["one", "two"]
    assert [spec.name for spec in load_spec_file(several)] == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"datum_tries": 2, "datumTries": 2}, "given twice"),
        ({"datum_trys": 2}, "unknown field 'datum_trys'"),
        ({"transform": {"cmd": []}}, "cmd"),
        ({"input": {"pfs": {"repo": "x"}}}, "glob"),
        ({"input": {"pfs": {"repo": "x", "glob": "/[abc"}}}, "glob"),
        ({"input": {"pfs": {"repo": "out", "glob": "/"}}}, "reserved"),
        ({"input": {"cron": {"name": "tick", "spec": "@every 1m"}}}, "cron"),
        ({"datum_timeout": "10m"}, "duration"),
        ({"pipeline": {"name": "bad name"}}, "pipeline.name"),
        ({"datum_set_spec": {"numbr": 2}}, "unknown field 'numbr' in datum_set_spec"),
        ({"datum_set_spec": {"number": -1}}, "datum_set_spec.number must not be negative"),
        ({"transform": {"cmd": ["true"], "datum_batching": "yes"}}, "true or false"),
        (
            {
                "input": {
                    "cross": [
                        {"pfs": {"repo": "a", "glob": "/"}},
                        {"pfs": {"repo": "a", "glob": "/*"}},
                    ]
                }
            },
            "appears twice",
        ),
    ],
)
def test_specs_pachyderm_would_reject_are_errors(tmp_path: Path, change: dict, message: str):
    path = write(tmp_path, "bad.json", json.dumps({**SNAKE, **change}))
    with pytest.raises(SpecError, match=message):
        load_spec_file(path)


def test_children_are_sorted_by_written_name_before_defaults(tmp_path: Path):
    spec = {
        **SNAKE,
        "input": {
            "cross": [
                {"pfs": {"repo": "zeta", "glob": "/"}},
                {"pfs": {"repo": "beta", "glob": "/", "name": "b"}},
                {"pfs": {"repo": "alpha", "glob": "/"}},
                {"pfs": {"repo": "gamma", "glob": "/", "name": "a"}},
            ]
        },
    }
    parsed = load_spec_file(write(tmp_path, "s.json", json.dumps(spec)))[0].input
    assert isinstance(parsed, CompositeInput)
    # Unnamed inputs sort as "" and keep their order, ahead of named ones.
    assert [child.name for child in parsed.children] == ["zeta", "alpha", "a", "b"]


def test_a_nested_input_sorts_by_its_first_childs_name(tmp_path: Path):
    spec = {
        **SNAKE,
        "input": {
            "cross": [
                {"pfs": {"repo": "m", "glob": "/", "name": "m"}},
                {
                    "join": [
                        {"pfs": {"repo": "y", "glob": "/", "name": "y"}},
                        {"pfs": {"repo": "c", "glob": "/", "name": "c"}},
                    ]
                },
            ]
        },
    }
    parsed = load_spec_file(write(tmp_path, "s.json", json.dumps(spec)))[0].input
    join, single = parsed.children
    assert [child.name for child in join.children] == ["c", "y"]
    assert single.name == "m"


def test_spec_folder_reads_only_json_files_directly_inside(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "a.json", json.dumps(SNAKE))
    write(tmp_path / "sub", "b.json", json.dumps({**SNAKE, "pipeline": {"name": "other"}}))
    write(tmp_path, "notes.txt", "not a spec")
    assert [spec.name for spec in load_spec_dir(tmp_path)] == ["crop"]
    write(tmp_path, "c.json", json.dumps(SNAKE))
    with pytest.raises(SpecError, match="defined twice"):
        load_spec_dir(tmp_path)
