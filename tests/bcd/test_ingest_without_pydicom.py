"""`bcd ingest` on DICOM input where pydicom (the `dicom` extra) is not installed."""

import subprocess
import sys

from helpers import REPO

# None in sys.modules is how Python marks a module as not importable: find_spec and
# import then behave as where the package is not installed.
WITHOUT_PYDICOM = """
import sys
sys.modules["pydicom"] = None
from bcd.cli import main
sys.exit(main(["ingest", *sys.argv[1:]]))
"""


def test_dicom_input_without_pydicom_names_the_extra(tmp_path):
    src = tmp_path / "dicom"
    src.mkdir()
    (src / "image.dcm").write_bytes(bytes(128) + b"DICM")
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYDICOM, str(src), str(tmp_path / "exams")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "need pydicom" in completed.stderr
    assert "pip install 'breast-cancer-pachyderm[dicom]'" in completed.stderr
    assert not (tmp_path / "exams").exists()
