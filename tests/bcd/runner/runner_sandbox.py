"""A sandbox for runner tests: repo folders, spec files, runs in-process or through `bcd run`.

Imported by the runner tests as `runner_sandbox` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO

from bcd.runner import RunOptions, RunSummary, run_pipelines

PROJECT_ROOT = REPO


def hand_datum_id(*inputs: tuple[str, str, str, str]) -> str:
    """The doc's recipe: per input name, repo, branch, path, each then its int64-BE length."""
    digest = hashlib.blake2b(digest_size=32)
    for fields in inputs:
        for text in fields:
            data = text.encode()
            digest.update(data + struct.pack(">q", len(data)))
    return digest.hexdigest()


def pfs(repo: str, glob: str, **fields: Any) -> dict[str, Any]:
    """A pfs input."""
    return {"pfs": {"repo": repo, "glob": glob, **fields}}


def pipeline(name: str, input_: dict[str, Any], cmd: list[str], **fields: Any) -> dict[str, Any]:
    """A spec whose transform runs `cmd`; `transform_*` keywords go into the transform."""
    transform: dict[str, Any] = {"image": "local", "cmd": cmd}
    for key in [key for key in fields if key.startswith("transform_")]:
        transform[key.removeprefix("transform_")] = fields.pop(key)
    return {"pipeline": {"name": name}, "input": input_, "transform": transform, **fields}


def sh(script: str) -> list[str]:
    """A shell command line as a cmd (the runner itself never uses a shell)."""
    return ["sh", "-c", script]


def wait_for(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll until `condition()` holds; fail the test after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def processes_under(folder: Path) -> list[int]:
    """Processes whose PFS_ROOT lies under `folder` (datum commands and their children)."""
    marker = f"PFS_ROOT={folder.resolve()}/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if any(item.startswith(marker) for item in environ.split(b"\0")):
                found.append(int(entry.name))
    return found


def command(pid: int) -> str:
    """A process's command name, "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class Sandbox:
    root: Path

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def pipelines(self) -> Path:
        return self.root / "pipelines"

    def repo(self, name: str, files: dict[str, str]) -> Path:
        """Create (or add to) a repo folder; keys are paths inside it."""
        folder = self.root / "repos" / name
        folder.mkdir(parents=True, exist_ok=True)
        for relative, content in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return folder

    def specs(self, *specs: dict[str, Any]) -> None:
        """Replace the spec folder with one file per spec."""
        self.pipelines.mkdir(exist_ok=True)
        for old in self.pipelines.glob("*.json"):
            old.unlink()
        for spec in specs:
            path = self.pipelines / f"{spec['pipeline']['name']}.json"
            path.write_text(json.dumps(spec, indent=2))

    def options(self, **overrides: Any) -> RunOptions:
        repos = {path.name: path for path in (self.root / "repos").glob("*")}
        defaults = {
            "pipelines": self.pipelines,
            "data": repos.pop("sample_data", self.root / "repos" / "sample_data"),
            "models": repos.pop("models", self.root / "repos" / "models"),
            "out": self.out,
            "repos": repos,
            "progress": False,
            # One datum at a time unless a test asks for more: fault and ordering tests
            # count operations in datum order.
            "workers": 1,
        }
        return RunOptions(**{**defaults, **overrides})

    def run(self, **overrides: Any) -> RunSummary:
        """run_pipelines in this process."""
        return run_pipelines(self.options(**overrides))

    def cli_args(self, *extra: str) -> list[str]:
        options = self.options()
        args = [sys.executable, "-m", "bcd.cli", "run", "--pipelines", str(options.pipelines)]
        args += ["--data", str(options.data), "--models", str(options.models)]
        args += ["--out", str(options.out), "--workers", str(options.workers)]
        for name, folder in options.repos.items():
            args += ["--repo", f"{name}={folder}"]
        return args + list(extra)

    def cli(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`bcd run` as a subprocess."""
        return subprocess.run(
            self.cli_args(*extra),
            cwd=PROJECT_ROOT,
            env={**os.environ, "TQDM_DISABLE": "1", **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def files(self, pipeline_name: str) -> dict[str, str]:
        """Every file of an output repo: relative path -> text."""
        repo = self.out / pipeline_name
        return {
            path.relative_to(repo).as_posix(): path.read_text()
            for path in sorted(repo.rglob("*"))
            if path.is_file()
        }


def job(summary: RunSummary, name: str):
    """The job summary of one pipeline."""
    return next(job for job in summary.jobs if job.pipeline == name)
