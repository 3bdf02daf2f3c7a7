"""Datums from input specs (docs/pachyderm-datums.md section 2), on real folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runner_sandbox import hand_datum_id

from bcd.runner.datums import Datum, build_datums, datum_hash
from bcd.runner.errors import GlobError
from bcd.runner.fileset import RepoFiles
from bcd.runner.spec import parse_spec


def make_repos(root: Path, layout: dict[str, list[str]]) -> dict[str, RepoFiles]:
    repos = {}
    for name, files in layout.items():
        folder = root / name
        folder.mkdir()
        for relative in files:
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name}:{relative}")
        repos[name] = RepoFiles(folder)
    return repos


def datums_of(input_: dict[str, Any], repos: dict[str, RepoFiles]) -> list[Datum]:
    spec = parse_spec(
        {"pipeline": {"name": "p"}, "input": input_, "transform": {"cmd": ["true"]}}, Path("t")
    )
    return build_datums(spec.input, repos)


def as_paths(datums: list[Datum]) -> set[tuple[str, ...]]:
    """Each datum as the tuple of "name:path" of its inputs, in order."""
    return {tuple(f"{item.name}:{item.path}" for item in datum.inputs) for datum in datums}


@pytest.fixture
def repos(tmp_path: Path) -> dict[str, RepoFiles]:
    return make_repos(
        tmp_path,
        {
            "left": ["a-1.txt", "a-2.txt", "a-3.txt"],
            "right": ["b-1.txt", "b-1.csv", "b-2.txt", "b-4.txt"],
            "empty": [],
        },
    )


def pfs(repo: str, glob: str, **fields: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **fields}}


def test_cross_is_the_product_with_child_zero_first(repos):
    datums = datums_of({"cross": [pfs("left", "/*"), pfs("right", "/b-2*")]}, repos)
    assert as_paths(datums) == {
        ("left:/a-1.txt", "right:/b-2.txt"),
        ("left:/a-2.txt", "right:/b-2.txt"),
        ("left:/a-3.txt", "right:/b-2.txt"),
    }


def test_cross_with_an_empty_child_is_empty(repos):
    assert datums_of({"cross": [pfs("left", "/*"), pfs("empty", "/*")]}, repos) == []
    assert datums_of({"cross": [pfs("left", "/*"), pfs("empty", "/")]}, repos) == []


def test_cross_children_are_ordered_by_name(repos):
    input_ = {"cross": [pfs("right", "/b-4.txt", name="zz"), pfs("left", "/a-1.txt", name="aa")]}
    assert as_paths(datums_of(input_, repos)) == {("aa:/a-1.txt", "zz:/b-4.txt")}


def join_input(left_outer: bool = False, right_outer: bool = False) -> dict[str, Any]:
    return {
        "join": [
            pfs("left", "/a-(*).txt", join_on="$1", outer_join=left_outer),
            pfs("right", "/b-(*).*", join_on="$1", outer_join=right_outer),
        ]
    }


def test_inner_join_keeps_keys_every_child_has_and_multiplies_out(repos):
    assert as_paths(datums_of(join_input(), repos)) == {
        ("left:/a-1.txt", "right:/b-1.csv"),
        ("left:/a-1.txt", "right:/b-1.txt"),
        ("left:/a-2.txt", "right:/b-2.txt"),
    }


def test_outer_join_keeps_unmatched_inputs_of_outer_children_only(repos):
    inner = as_paths(datums_of(join_input(), repos))
    assert as_paths(datums_of(join_input(left_outer=True), repos)) == inner | {("left:/a-3.txt",)}
    assert as_paths(datums_of(join_input(right_outer=True), repos)) == inner | {("right:/b-4.txt",)}
    assert as_paths(datums_of(join_input(True, True), repos)) == inner | {
        ("left:/a-3.txt",),
        ("right:/b-4.txt",),
    }


def test_join_datums_carry_their_keys(repos):
    datum = next(d for d in datums_of(join_input(), repos) if d.inputs[0].path == "/a-2.txt")
    assert [item.join_on for item in datum.inputs] == ["2", "2"]


def test_group_puts_every_input_with_a_key_in_one_datum(repos):
    input_ = {
        "group": [
            pfs("left", "/a-(*).txt", group_by="$1"),
            pfs("right", "/b-(*).*", group_by="$1"),
        ]
    }
    assert as_paths(datums_of(input_, repos)) == {
        ("left:/a-1.txt", "right:/b-1.csv", "right:/b-1.txt"),
        ("left:/a-2.txt", "right:/b-2.txt"),
        ("left:/a-3.txt",),
        ("right:/b-4.txt",),
    }


def test_empty_group_key_groups_everything_together(repos):
    input_ = {"group": [pfs("left", "/*", group_by="${9}")]}
    assert as_paths(datums_of(input_, repos)) == {
        ("left:/a-1.txt", "left:/a-2.txt", "left:/a-3.txt")
    }


def test_union_keeps_every_datum_and_collapses_equal_ids(repos):
    both = datums_of({"union": [pfs("left", "/*"), pfs("right", "/*.txt")]}, repos)
    assert as_paths(both) == {
        ("left:/a-1.txt",),
        ("left:/a-2.txt",),
        ("left:/a-3.txt",),
        ("right:/b-1.txt",),
        ("right:/b-2.txt",),
        ("right:/b-4.txt",),
    }
    overlapping = datums_of({"union": [pfs("left", "/*"), pfs("left", "/a-1*")]}, repos)
    assert len(overlapping) == 3


def test_bad_template_fails_when_datums_are_built(repos):
    with pytest.raises(GlobError):
        datums_of({"join": [pfs("left", "/(*)", join_on="$01"), pfs("right", "/*")]}, repos)


def test_datum_id_follows_pachyderm(tmp_path: Path):
    repos = make_repos(tmp_path, {"sample_data": ["exam1/a.png"], "models": ["w.p"]})
    (single,) = datums_of(pfs("sample_data", "/*"), repos)
    assert single.id == hand_datum_id(("sample_data", "sample_data", "master", "/exam1/"))
    (crossed,) = datums_of(
        {"cross": [pfs("sample_data", "/*", name="exams"), pfs("models", "/", branch="dev")]},
        repos,
    )
    # The unnamed input sorts as "" ahead of the named one.
    assert crossed.id == hand_datum_id(
        ("models", "models", "dev", "/"), ("exams", "sample_data", "master", "/exam1/")
    )


def test_datum_hash_follows_content_and_salt(tmp_path: Path):
    repos = make_repos(tmp_path, {"sample_data": ["exam1/a.png", "exam1/b.png"]})

    def hash_now(salt: str = "s") -> str:
        (datum,) = datums_of(
            pfs("sample_data", "/*"), {"sample_data": RepoFiles(repos["sample_data"].root)}
        )
        return datum_hash(datum, salt)

    before = hash_now()
    assert hash_now() == before
    assert hash_now("other salt") != before
    exam = repos["sample_data"].root / "exam1"
    (exam / "b.png").rename(exam / "c.png")
    # As in Pachyderm, a directory's hash covers its children's contents, not their names.
    assert hash_now() == before
    (exam / "c.png").write_text("changed")
    assert hash_now() != before
