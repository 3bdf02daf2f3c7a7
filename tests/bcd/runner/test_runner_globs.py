"""Glob matching and template expansion, on the cases of docs/pachyderm-datums.md section 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcd.runner.errors import GlobError
from bcd.runner.fileset import RepoFiles
from bcd.runner.globs import Glob, clean_path, expand_template


@pytest.fixture
def repo(tmp_path: Path) -> RepoFiles:
    """The layout of Pachyderm's TestGlobFile3, plus a top-level file and an empty folder."""
    for relative in ("dir1/file1.1", "dir1/file1.2", "dir2/file2.1", "dir2/file2.2", "top.txt"):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)
    (tmp_path / "empty").mkdir()
    return RepoFiles(tmp_path)


def selected(repo: RepoFiles, pattern: str) -> set[str]:
    glob = Glob(pattern)
    return {entry for entry in repo.entries() if glob.matches(entry)}


def test_entries_are_files_and_nonempty_directories(repo: RepoFiles):
    assert repo.entries() == [
        "/",
        "/dir1/",
        "/dir1/file1.1",
        "/dir1/file1.2",
        "/dir2/",
        "/dir2/file2.1",
        "/dir2/file2.2",
        "/top.txt",
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/", {"/"}),
        ("", {"/"}),
        ("/*", {"/dir1/", "/dir2/", "/top.txt"}),
        ("*", {"/dir1/", "/dir2/", "/top.txt"}),
        ("/(*)", {"/dir1/", "/dir2/", "/top.txt"}),
        ("/(*)/", {"/dir1/", "/dir2/", "/top.txt"}),
        ("/*/*", {"/dir1/file1.1", "/dir1/file1.2", "/dir2/file2.1", "/dir2/file2.2"}),
        ("**.2", {"/dir1/file1.2", "/dir2/file2.2"}),
        (
            "/**",
            {
                "/dir1/",
                "/dir1/file1.1",
                "/dir1/file1.2",
                "/dir2/",
                "/dir2/file2.1",
                "/dir2/file2.2",
                "/top.txt",
            },
        ),
        ("/**/*.txt", set()),
        ("/**/*.1", {"/dir1/file1.1", "/dir2/file2.1"}),
        ("/dir?", {"/dir1/", "/dir2/"}),
        ("/dir[!1]", {"/dir2/"}),
        ("/dir[1-1]/*", {"/dir1/file1.1", "/dir1/file1.2"}),
        ("/{top.txt,dir2}", {"/dir2/", "/top.txt"}),
        ("/empty", set()),
    ],
)
def test_glob_selects_as_pachyderm(repo: RepoFiles, pattern: str, expected: set[str]):
    assert selected(repo, pattern) == expected


def test_an_empty_repo_has_no_entries(tmp_path: Path):
    (tmp_path / "only-an-empty-folder").mkdir()
    assert RepoFiles(tmp_path).entries() == []
    assert RepoFiles(tmp_path / "missing").entries() == []


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("", "/"), ("abc", "/abc"), ("abc/", "/abc"), ("/", "/"), ("//a//b/", "/a/b"), ("a/..", "/")],
)
def test_clean_path(raw: str, clean: str):
    assert clean_path(raw) == clean


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/[[:alpha:]]", "/a", True),
        ("/[[:alpha:]]", "/[", True),  # ohmyglob's class also matches '[' and ']'
        ("/[[:alpha:]]", "/]", True),
        ("/[[:alpha:]]", "/1", False),
        ("/[a!b]", "/c", True),  # a '!' anywhere in a class negates it
        ("/[a!b]", "/a", False),
        ("/\\*", "/*", True),
        ("/\\*", "/x", False),
        ("/a\\?", "/a?", True),
        ("/!(foo)", "/bar", True),
        ("/!(foo)", "/foo", False),
        ("/+(ab)", "/abab", True),
        ("/+(ab)", "/", False),
        ("/?(x)y", "/y", True),
        ("/?(x)y", "/xy", True),
        ("/*", "/", False),
        ("/(*)", "/", False),
    ],
)
def test_glob_syntax(pattern: str, path: str, matches: bool):
    assert Glob(pattern).matches(path) is matches


@pytest.mark.parametrize(
    ("pattern", "path", "template", "expanded"),
    [
        ("/(*)-(*)", "/a-b", "$1-$2", "a-b"),
        ("/(*)-*", "/a-b-1", "$1", "a-b"),  # greedy with backtracking
        ("/(*)", "/exam7/", "$1", "exam7"),  # a directory's trailing '/' is removed
        ("/(*)", "/x", "${1}y", "xy"),
        ("/(*)", "/x", "$1_", "x_"),  # only digits form a group name
        ("/(*)", "/x", "$$1", "$1"),
        ("/(*)", "/x", "$x-$", "$x-$"),  # '$' not followed by a digit stays
        ("/(*)", "/x", "${x}", "${x}"),
        ("/(*)", "/x", "$2", ""),  # past the last group
        ("/(*)", "/x", "$0", "/x"),
        ("/((a)(b))", "/ab", "$1|$2|$3", "ab|a|b"),  # numbered by opening parenthesis
        ("/{x,y}(*)", "/yz", "$1", "z"),  # braces do not capture
        ("/*(a|b)c", "/abac", "$1", "aba"),  # *( captures
        ("/(*)", "/x", "", ""),
    ],
)
def test_template_expansion(pattern: str, path: str, template: str, expanded: str):
    assert Glob(pattern).replace(path, template) == expanded


@pytest.mark.parametrize("template", ["$01", "${01}", "$00"])
def test_leading_zero_group_is_an_error(template: str):
    with pytest.raises(GlobError, match="leading zero"):
        expand_template(template, ["/x", "x"])


@pytest.mark.parametrize("pattern", ["/[abc", "/[]", "/[z-a]", "/^(x)"])
def test_invalid_globs_are_errors(pattern: str):
    with pytest.raises(GlobError):
        Glob(pattern)
