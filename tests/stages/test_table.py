"""The stage table is the one owner of pipeline, repo and input names."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from helpers import REPO

from stages import table

NAMES = {
    "sample_data",
    "models",
    "crop",
    "extract_centers",
    "generate_heatmaps",
    "classify",
    "visualize",
    "summary",
    "breast_cancer",
}
SOURCES = sorted(
    path
    for folder in ("stages", "bcd", "scripts")
    for path in (REPO / folder).rglob("*.py")
    if path != REPO / "stages" / "table.py"
)


def test_the_table_names_every_pipeline_of_the_committed_specs():
    specs = [json.loads(p.read_text()) for p in (REPO / "pipelines").glob("*.json")]
    assert [s.name for s in table.DAG] == [
        "crop",
        "extract_centers",
        "generate_heatmaps",
        "classify",
        "visualize",
        "summary",
    ]
    assert {s["pipeline"]["name"] for s in specs} == {s.name for s in table.DAG}
    for stage in table.ALL_STAGES:
        assert {stage.name, *stage.inputs} <= NAMES
    assert table.stage("classify").inputs == (
        "crop",
        "extract_centers",
        "generate_heatmaps",
        "models",
    )
    assert [s.name for s in table.SINGLE_STAGE_STEPS] == [
        "crop",
        "extract_centers",
        "generate_heatmaps",
        "classify",
        "visualize",
    ]
    with pytest.raises(KeyError, match="no stage named 'nope'"):
        table.stage("nope")


def name_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants equal to a pipeline/repo name, used other than as a JSON key.

    Dict keys, subscripts, `.get()` arguments and comparisons are JSON fields or CLI
    words that happen to share a name, and a `default=` or a `DEFAULT_*` constant is a
    default folder (`sample_data/`); anything else (a path part, a tuple entry, an
    argument) uses the name as a pipeline, repo or input.
    """
    allowed: set[int] = set()
    for node in ast.walk(tree):
        default_keyword = isinstance(node, ast.keyword) and node.arg == "default"
        default_constant = isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id.startswith("DEFAULT_") for t in node.targets
        )
        if default_keyword or default_constant:
            allowed.update(id(part) for part in ast.walk(node.value))
        if isinstance(node, ast.Dict):
            allowed.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            allowed.add(id(node.slice))
        elif isinstance(node, ast.Compare):
            allowed.update(id(part) for part in (node.left, *node.comparators))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
        ):
            allowed.update(id(arg) for arg in node.args)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in NAMES and id(node) not in allowed
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_pipeline_or_repo_name_is_written_outside_the_table(path):
    found = name_literals(ast.parse(path.read_text()))
    assert found == [], f"{path}: use stages.table's names instead of {found}"


def test_the_check_sees_a_path_literal():
    code = 'pfs / "crop"\nx = {"models": 1}\ny["summary"]\nf(d=Path("models"))'
    assert name_literals(ast.parse(code)) == [(1, "crop"), (4, "models")]


def test_the_table_needs_only_the_standard_library():
    probe = (
        "import sys, stages.table; "
        "print(sorted(m for m in sys.modules if m in ('numpy', 'torch', 'cv2')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
