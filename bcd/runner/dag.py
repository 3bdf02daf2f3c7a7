"""Which repo each input reads, and the order the pipelines run in (upstream first)."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from pathlib import Path

from bcd.runner.errors import RunnerError, SpecError
from bcd.runner.spec import PipelineSpec


def pipeline_order(
    specs: list[PipelineSpec], given: Mapping[str, Path], explicit: set[str]
) -> list[PipelineSpec]:
    """Specs in dependency order; every input repo must be a pipeline or a given folder.

    `given` maps repo names to folders (defaults included); `explicit` are the names the
    user passed with --repo, which may not shadow a pipeline.
    """
    by_name = {spec.name: spec for spec in specs}
    shadowed = sorted(explicit & set(by_name))
    if shadowed:
        raise SpecError(f"--repo {shadowed[0]}=... has the name of a pipeline; rename one")
    graph: dict[str, list[str]] = {}
    for spec in sorted(specs, key=lambda spec: spec.name):
        for repo in spec.input_repos():
            if repo not in by_name and repo not in given:
                raise SpecError(
                    f"pipeline {spec.name!r} reads repo {repo!r}, which is neither a pipeline "
                    f"in the spec folder nor given (use --repo {repo}=DIR)"
                )
        graph[spec.name] = [repo for repo in spec.input_repos() if repo in by_name]
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise SpecError(f"pipelines form a cycle: {' -> '.join(error.args[1])}") from error
    return [by_name[name] for name in order]


def input_folders(
    specs: list[PipelineSpec], given: Mapping[str, Path], out: Path
) -> dict[str, Path]:
    """Repo name -> local folder: given folders (which must exist) and pipeline outputs."""
    pipelines = {spec.name for spec in specs}
    folders: dict[str, Path] = {}
    for spec in specs:
        for repo in spec.input_repos():
            if repo in pipelines:
                folders[repo] = out / repo
                continue
            folder = given[repo]
            if not folder.is_dir():
                raise RunnerError(
                    f"input repo {repo!r} of pipeline {spec.name!r}: folder {folder} does not "
                    "exist (--data, --models or --repo NAME=DIR)"
                )
            folders[repo] = folder.resolve()
    return folders
