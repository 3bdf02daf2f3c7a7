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
            if line.startswith(("from test_", "import test_", "from fuzz_", "import fuzz_"))
        ]
        assert imports == [], (
            f"{path}: share helpers through tests/helpers.py (fuzz harnesses: "
            "tests/fuzz/fuzzing.py) instead"
        )


def test_fuzz_harnesses_follow_the_convention():
    # tests/fuzz/test_fuzz_smoke.py and `make fuzz` run every fuzz_<boundary>.py as a script
    # with the seeds in tests/fuzz/corpus/<boundary>/.
    for path in (REPO / "tests" / "fuzz").glob("fuzz_*.py"):
        text = path.read_text()
        assert "def fuzz_one_input(data: bytes) -> None:" in text, path
        assert "atheris.instrument_imports(" in text, path
        assert 'if __name__ == "__main__":' in text, path
