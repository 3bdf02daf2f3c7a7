"""Fuzz the restricted unpickler of exam lists (NYU's, the Pachyderm example's per-exam one):
any bytes give a bounded list of plain values, or a DataError; nothing in them runs.
"""

from __future__ import annotations

import json
import sys

import atheris
from fuzzing import input_file

with atheris.instrument_imports(include=["stages"]):
    from stages.core.errors import DataError
    from stages.core.exam import exam_from_dict
    from stages.io.exam_lists import load_exam_list


def fuzz_one_input(data: bytes) -> None:
    try:
        exams = load_exam_list(input_file(data, "exam_list.pkl"))
    except DataError:
        return
    json.dumps(exams, allow_nan=True)  # plain data, as deep and as large as JSON allows
    for exam_dict in exams:
        try:
            exam = exam_from_dict("exam-1", exam_dict, file="exam_list.pkl")
        except DataError:
            continue
        json.dumps(exam.to_dict())  # what crop writes must be writable


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
