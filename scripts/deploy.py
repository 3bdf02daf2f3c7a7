"""Deploy the pipeline bundle to a Pachyderm 2.x cluster with the Python client.

The same steps as `make deploy`: render the specs for a registry and tag (the same specs
`make deploy` renders), check pachd's version, refuse to touch pipelines of the same name
that are not this bundle's (Pachyderm's own breast-cancer example uses them), create the
input repos (the stage table's SOURCE_REPOS) if missing, then create every pipeline of
one variant in DAG order, inputs first.

    python scripts/deploy.py --registry R           the default variant, tag = the commit
    python scripts/deploy.py --variant cpu          (or single-stage)
    python scripts/deploy.py --update [--reprocess] update existing pipelines
    python scripts/deploy.py --specs DIR            specs rendered elsewhere
    python scripts/deploy.py --order DIR            print DIR's spec files in DAG order
    python scripts/deploy.py --plan DIR --pachctl-version F --pachctl-pipelines F
                                                    the pachctl calls `make deploy` runs

The cluster is --address, else $PACHD_ADDRESS, else the active context of the pachctl
config ($PACH_CONFIG or ~/.pachyderm/config.json), else localhost:30650 (what
`pachctl port-forward` serves). Needs `pip install pachyderm-sdk`; only this script
imports it, and only when it talks to a cluster.
"""

from __future__ import annotations

import argparse
import graphlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PIPELINES_DIR = REPO / "pipelines"
# stages.table and the renderer beside this file are standard library only: no install needed.
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

import render_pipelines  # noqa: E402

from stages.table import SOURCE_REPOS  # noqa: E402

# Variant -> its folder among the rendered specs ("" is pipelines/ itself). 1.x specs are
# for pachctl 1.x (`make deploy VARIANT=pachyderm-1.x`); this client speaks 2.x only.
VARIANTS = {"default": "", "cpu": "cpu", "single-stage": "single-stage"}
# The pachd release that first serves each API or field these specs rely on.
CREATE_PIPELINE_V2 = (2, 8)  # what this script calls; pachctl uses the older call
DATUM_BATCHING = (2, 5)
PACHD_LINE = re.compile(r"^pachd\s+v?(\d+)\.(\d+)\.(\d+)", re.MULTILINE)
PACH_CONFIG = Path(os.environ.get("PACH_CONFIG", "~/.pachyderm/config.json")).expanduser()


class DeployError(Exception):
    """A failure with a message that says what to do; printed without a traceback."""


def input_repos(node: dict[str, Any]) -> set[str]:
    """Every repo a pipeline input reads, through cross/join/group/union nesting."""
    if "pfs" in node:
        return {node["pfs"]["repo"]}
    children = [child for key in ("cross", "join", "group", "union") for child in node.get(key, [])]
    return set().union(*(input_repos(child) for child in children))


def version_text(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def pachd_problem(
    version: tuple[int, int, int], specs: Mapping[Path, dict[str, Any]], *, client_api: bool
) -> str | None:
    """Why these specs cannot go to a pachd of `version` (None: they can).

    `client_api`: deployed by this script (CreatePipelineV2) rather than by pachctl.
    """
    found = f"pachd {version_text(version)} found"
    if any("standby" in spec for spec in specs.values()):
        if version[0] != 1:
            return f"{found}, but these are the Pachyderm 1.x specs: deploy another VARIANT"
        return None
    if version[0] < 2:
        return f"{found}, but these specs are for Pachyderm 2.x: use VARIANT=pachyderm-1.x"
    if client_api and version[:2] < CREATE_PIPELINE_V2:
        return (
            f"{found}; scripts/deploy.py creates pipelines with CreatePipelineV2, which needs "
            f"pachd {version_text(CREATE_PIPELINE_V2)} or later: upgrade pachd, or deploy "
            "with `make deploy` (pachctl)"
        )
    batched = sorted(
        spec["pipeline"]["name"]
        for spec in specs.values()
        if spec.get("transform", {}).get("datum_batching")
    )
    if batched and version[:2] < DATUM_BATCHING:
        return (
            f"{found}; {', '.join(batched)} use datum batching, which needs pachd "
            f"{version_text(DATUM_BATCHING)} or later: upgrade pachd"
        )
    return None


def parse_pachctl_version(text: str) -> tuple[int, int, int]:
    """pachd's version from `pachctl version`'s table."""
    match = PACHD_LINE.search(text)
    if match is None:
        raise DeployError(f"could not read pachd's version from `pachctl version`: {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


def parse_pachctl_pipelines(text: str, project: str | None = None) -> dict[str, list[str]]:
    """Name -> transform.cmd of each pipeline in `pachctl list pipeline --raw` output."""
    decoder, pipelines, position = json.JSONDecoder(), {}, 0
    text = text.strip()
    while position < len(text):
        try:
            info, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DeployError(f"`pachctl list pipeline --raw` gave no JSON: {error}") from None
        position = end + len(text[end:]) - len(text[end:].lstrip())
        pipeline = info.get("pipeline", {})
        if project is not None and pipeline.get("project", {}).get("name", project) != project:
            continue
        transform = info.get("details", {}).get("transform") or info.get("transform", {})
        pipelines[pipeline.get("name", "")] = list(transform.get("cmd", []))
    return pipelines


def deploy_plan(
    specs: dict[Path, dict[str, Any]],
    existing: Mapping[str, Sequence[str]],
    *,
    update: bool,
    reprocess: bool,
) -> list[tuple[Path, str]]:
    """(spec, "create" | "update" | "reprocess") per pipeline, in DAG order.

    A pipeline of the same name whose command is not ours (Pachyderm's breast-cancer
    example names its pipelines crop, extract_centers, ...) stops the deploy: updating it
    in place would keep its salt, skip the datums it already did and leave its outputs
    in repos our stages read.
    """
    plan, foreign = [], []
    for path in dag_order(specs):
        spec = specs[path]
        name = spec["pipeline"]["name"]
        if name not in existing:
            plan.append((path, "create"))
        elif reprocess:
            plan.append((path, "reprocess"))
        elif list(existing[name]) != list(spec["transform"]["cmd"]):
            foreign.append(f"{name} (cmd {' '.join(existing[name]) or 'none'})")
        else:
            plan.append((path, "update" if update else "create"))
    if foreign:
        raise DeployError(
            f"pipelines of the same name that are not this bundle's exist: {', '.join(foreign)}."
            " Replace them and recompute every datum with REPROCESS=1 (make deploy/"
            "update-pipelines VARIANT=... REPROCESS=1, or scripts/deploy.py --reprocess), "
            "or delete them first (pachctl delete pipeline NAME, downstream first)"
        )
    return plan


def pachctl_commands(plan: list[tuple[Path, str]]) -> list[str]:
    """The pachctl argument lines that carry out a plan."""
    verbs = {
        "create": "create pipeline -f {}",
        "update": "update pipeline -f {}",
        "reprocess": "update pipeline --reprocess -f {}",
    }
    return [verbs[action].format(path) for path, action in plan]


def load_specs(folder: Path) -> dict[Path, dict[str, Any]]:
    specs = {path: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    if not specs:
        raise DeployError(f"no pipeline specs (*.json) in {folder}")
    return specs


def dag_order(specs: dict[Path, dict[str, Any]]) -> list[Path]:
    """The spec files ordered so that each pipeline comes after the pipelines it reads."""
    folder = next(iter(specs)).parent
    by_name = {spec["pipeline"]["name"]: path for path, spec in specs.items()}
    graph: dict[str, set[str]] = {}
    for name, path in by_name.items():
        repos = input_repos(specs[path]["input"])
        unknown = repos - by_name.keys() - set(SOURCE_REPOS)
        if unknown:
            raise DeployError(
                f"{path}: reads {', '.join(sorted(unknown))}, which is neither "
                f"{' nor '.join(SOURCE_REPOS)} nor a pipeline in {folder}"
            )
        graph[name] = repos & by_name.keys()
    try:
        return [by_name[name] for name in graphlib.TopologicalSorter(graph).static_order()]
    except graphlib.CycleError as cycle:
        raise DeployError(f"the pipelines in {folder} form a cycle: {cycle.args[1]}") from None


def connect(address: str | None, timeout_s: float) -> Any:
    """A pachyderm_sdk Client whose cluster answered within `timeout_s`."""
    try:
        import grpc
        from pachyderm_sdk import Client
        from pachyderm_sdk.errors import ConfigError
    except ImportError:
        raise DeployError(
            "the Pachyderm Python client is not installed: pip install pachyderm-sdk "
            "(or use `make deploy`, which uses pachctl)"
        ) from None
    address = address or os.environ.get("PACHD_ADDRESS")
    try:
        if address:
            client = Client.from_pachd_address(address)
        elif PACH_CONFIG.is_file():
            client = Client.from_config(PACH_CONFIG)
        else:
            client = Client()
    except (ConfigError, ValueError, OSError, KeyError) as error:
        raise DeployError(f"cannot set up the Pachyderm client: {error}") from None
    # The client's calls carry no deadline: to an address that drops packets they wait for
    # TCP to give up. A bounded wait for the channel to connect fails fast instead.
    probe = (
        grpc.secure_channel(client.address, grpc.ssl_channel_credentials(client.root_certs))
        if client.root_certs
        else grpc.insecure_channel(client.address)
    )
    try:
        grpc.channel_ready_future(probe).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise DeployError(
            f"no Pachyderm cluster reachable at {client.address} (waited {timeout_s:g}s): "
            "start one, run `pachctl port-forward`, or pass --address host:port"
        ) from None
    finally:
        probe.close()
    try:
        version = client.get_version()
    except grpc.RpcError as error:
        raise DeployError(f"pachd at {client.address} did not answer: {error.details()}") from None
    print(f"connected to pachd {version.major}.{version.minor}.{version.micro} at {client.address}")
    return client


def existing_pipelines(client: Any, project: str) -> dict[str, list[str]]:
    """Name -> transform.cmd of each pipeline already in `project`."""
    from pachyderm_sdk.api import pfs

    infos = client.pps.list_pipeline(details=True, projects=[pfs.Project(name=project)])
    return {info.pipeline.name: list(info.details.transform.cmd) for info in infos}


def deploy(
    client: Any,
    specs: dict[Path, dict[str, Any]],
    project: str,
    *,
    update: bool,
    reprocess: bool,
) -> None:
    import grpc
    from pachyderm_sdk.api import pfs

    version = client.get_version()
    problem = pachd_problem((version.major, version.minor, version.micro), specs, client_api=True)
    if problem:
        raise DeployError(problem)
    try:
        plan = deploy_plan(
            specs, existing_pipelines(client, project), update=update, reprocess=reprocess
        )
    except grpc.RpcError as error:
        raise DeployError(f"cannot list the pipelines: {error.details()}") from None
    for name in SOURCE_REPOS:
        repo = pfs.Repo(name=name, type="user", project=pfs.Project(name=project))
        if not client.pfs.repo_exists(repo):
            client.pfs.create_repo(repo=repo)
            print(f"created repo {project}/{name}")
    for path, action in plan:
        spec = specs[path]
        # As pachctl does: a spec without a project goes to the current one.
        spec["pipeline"].setdefault("project", {"name": project})
        try:
            client.pps.create_pipeline_v2(
                create_pipeline_request_json=json.dumps(spec),
                update=action != "create",
                reprocess=action == "reprocess",
            )
        except grpc.RpcError as error:
            hint = " (pass --update to change an existing pipeline)" if not update else ""
            raise DeployError(f"{path}: {error.details()}{hint}") from None
        done = {"create": "created", "update": "updated", "reprocess": "updated (reprocess)"}
        print(f"{done[action]} pipeline {project}/{spec['pipeline']['name']}")


def rendered_specs(args: argparse.Namespace) -> dict[Path, dict[str, Any]]:
    """The variant's specs rendered for --registry/--tag/placement, as `make deploy` does."""
    try:
        placement = render_pipelines.GpuPlacement(
            render_pipelines.parse_tolerations(args.gpu_tolerations),
            render_pipelines.parse_node_selector(args.gpu_node_selector),
        )
    except render_pipelines.RenderError as error:
        raise DeployError(str(error)) from None
    folder = VARIANTS[args.variant]
    rendered = render_pipelines.render_all(args.registry, args.tag, placement)
    return {
        Path(path): json.loads(text)
        for path, text in sorted(rendered.items())
        if str(Path(path).parent) == (folder or ".")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    parser.add_argument("--registry", default=render_pipelines.DEFAULT_REGISTRY)
    parser.add_argument("--tag", help="image tag (default: the commit, git describe)")
    parser.add_argument(
        "--gpu-tolerations",
        default=os.environ.get("GPU_TOLERATIONS", ""),
        help="KEY[=VALUE]:EFFECT,... for the GPU pipelines (default: $GPU_TOLERATIONS)",
    )
    parser.add_argument(
        "--gpu-node-selector",
        default=os.environ.get("GPU_NODE_SELECTOR", ""),
        help="KEY=VALUE,... for the GPU pipelines (default: $GPU_NODE_SELECTOR)",
    )
    parser.add_argument("--specs", type=Path, help="a folder of rendered specs instead")
    parser.add_argument("--address", help="pachd address, e.g. grpc://localhost:30650")
    parser.add_argument("--project", default="default", help="Pachyderm project (default: default)")
    parser.add_argument("--update", action="store_true", help="update existing pipelines")
    parser.add_argument(
        "--reprocess",
        action="store_true",
        help="update existing pipelines, ours or not, and recompute every datum",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for pachd")
    parser.add_argument("--order", type=Path, metavar="DIR", help="print DIR's specs in DAG order")
    parser.add_argument(
        "--plan", type=Path, metavar="DIR", help="print the pachctl calls deploying DIR"
    )
    parser.add_argument("--pachctl-version", type=Path, help="with --plan: `pachctl version`")
    parser.add_argument(
        "--pachctl-pipelines", type=Path, help="with --plan: `pachctl list pipeline --raw`"
    )
    args = parser.parse_args(argv)
    try:
        if args.order:
            for path in dag_order(load_specs(args.order)):
                print(path)
            return 0
        if args.plan:
            if args.pachctl_version is None or args.pachctl_pipelines is None:
                parser.error("--plan needs --pachctl-version and --pachctl-pipelines")
            specs = load_specs(args.plan)
            version = parse_pachctl_version(args.pachctl_version.read_text())
            problem = pachd_problem(version, specs, client_api=False)
            if problem:
                raise DeployError(problem)
            existing = parse_pachctl_pipelines(args.pachctl_pipelines.read_text())
            plan = deploy_plan(specs, existing, update=args.update, reprocess=args.reprocess)
            print("\n".join(pachctl_commands(plan)))
            return 0
        if args.specs:
            specs = load_specs(args.specs)
        else:
            args.tag = args.tag or render_pipelines.build_tag()
            specs = rendered_specs(args)
        dag_order(specs)  # refuse a broken folder before touching the cluster
        client = connect(args.address, args.timeout)
        deploy(client, specs, args.project, update=args.update, reprocess=args.reprocess)
    except DeployError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
