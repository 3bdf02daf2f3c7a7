"""Fuzz an exam folder's exam.json: any bytes give an exam crop can write back, or a DataError."""

from __future__ import annotations

import json
import sys

import atheris
from fuzzing import scratch_dir

with atheris.instrument_imports(include=["stages"]):
    from stages.core.errors import DataError
    from stages.io.exam_files import EXAM_JSON, load_input_exam


def fuzz_one_input(data: bytes) -> None:
    exam_dir = scratch_dir("exam-1")
    (exam_dir / EXAM_JSON).write_bytes(data)
    try:
        exam = load_input_exam(exam_dir)
    except DataError:
        return
    json.dumps(exam.to_dict())  # what crop writes must be writable


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
