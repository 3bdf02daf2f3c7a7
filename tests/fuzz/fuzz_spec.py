"""Fuzz `bcd run`'s spec reading: any bytes as a spec file give pipeline specs or a
SpecError naming the file. Anything else escapes and is a crash."""

from __future__ import annotations

import sys

import atheris
from fuzzing import input_file

with atheris.instrument_imports(include=["bcd"]):
    from bcd.runner.errors import SpecError
    from bcd.runner.spec import PipelineSpec, load_spec_file


def fuzz_one_input(data: bytes) -> None:
    path = input_file(data, "pipelines/spec.json")
    try:
        specs = load_spec_file(path)
    except SpecError as error:
        message = str(error)
        assert message.startswith(str(path)), message
        assert len(message) < 2000, message[:200]
        return
    assert all(isinstance(spec, PipelineSpec) for spec in specs)


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
