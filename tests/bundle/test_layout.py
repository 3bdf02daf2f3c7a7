"""The tests' own layout: folders like the packages, module names pytest can tell apart."""

from __future__ import annotations

from collections import Counter

from helpers import REPO


def test_test_modules_have_unique_names():
    # Test folders are not packages, so pytest imports each module by its file name alone:
    # two files of one name in different folders stop the whole collection.
    names = Counter(path.name for path in (REPO / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []


def test_no_test_module_imports_another():
    for path in (REPO / "tests").rglob("*.py"):
        imports = [
            line
            for line in path.read_text().splitlines()
            if line.startswith(("from test_", "import test_"))
        ]
        assert imports == [], f"{path}: share helpers through tests/helpers.py instead"
