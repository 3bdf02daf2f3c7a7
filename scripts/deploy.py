"""Deploy the pipeline bundle to a Pachyderm 2.x cluster with the Python client.

The same steps as `make deploy`: create the input repos (the stage table's SOURCE_REPOS)
if they are missing, then create every pipeline of one variant in DAG order, inputs first.

    python scripts/deploy.py                        the default specs, pipelines/
    python scripts/deploy.py --variant cpu          pipelines/cpu/ (or single-stage)
    python scripts/deploy.py --specs DIR --update   other rendered specs; update pipelines
    python scripts/deploy.py --order DIR            print DIR's spec files in DAG order

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
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PIPELINES_DIR = REPO / "pipelines"
sys.path.insert(0, str(REPO))  # stages.table is standard library only: no install needed

from stages.table import SOURCE_REPOS  # noqa: E402

VARIANTS = {
    "default": PIPELINES_DIR,
    "cpu": PIPELINES_DIR / "cpu",
    "single-stage": PIPELINES_DIR / "single-stage",
}
PACH_CONFIG = Path(os.environ.get("PACH_CONFIG", "~/.pachyderm/config.json")).expanduser()


class DeployError(Exception):
    """A failure with a message that says what to do; printed without a traceback."""


def input_repos(node: dict[str, Any]) -> set[str]:
    """Every repo a pipeline input reads, through cross/join/group/union nesting."""
    if "pfs" in node:
        return {node["pfs"]["repo"]}
    children = [child for key in ("cross", "join", "group", "union") for child in node.get(key, [])]
    return set().union(*(input_repos(child) for child in children))


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
    if version.major < 2:
        raise DeployError(f"pachd {version.major}.{version.minor} is not 2.x; see pipelines/")
    print(f"connected to pachd {version.major}.{version.minor}.{version.micro} at {client.address}")
    return client


def deploy(client: Any, specs: dict[Path, dict[str, Any]], project: str, update: bool) -> None:
    import grpc
    from pachyderm_sdk.api import pfs

    for name in SOURCE_REPOS:
        repo = pfs.Repo(name=name, type="user", project=pfs.Project(name=project))
        if not client.pfs.repo_exists(repo):
            client.pfs.create_repo(repo=repo)
            print(f"created repo {project}/{name}")
    for path in dag_order(specs):
        spec = specs[path]
        # As pachctl does: a spec without a project goes to the current one.
        spec["pipeline"].setdefault("project", {"name": project})
        try:
            client.pps.create_pipeline_v2(
                create_pipeline_request_json=json.dumps(spec), update=update
            )
        except grpc.RpcError as error:
            hint = " (pass --update to change an existing pipeline)" if not update else ""
            raise DeployError(f"{path}: {error.details()}{hint}") from None
        print(f"{'updated' if update else 'created'} pipeline {project}/{spec['pipeline']['name']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    parser.add_argument("--specs", type=Path, help="a folder of specs (overrides --variant)")
    parser.add_argument("--address", help="pachd address, e.g. grpc://localhost:30650")
    parser.add_argument("--project", default="default", help="Pachyderm project (default: default)")
    parser.add_argument("--update", action="store_true", help="update existing pipelines")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for pachd")
    parser.add_argument("--order", type=Path, metavar="DIR", help="print DIR's specs in DAG order")
    args = parser.parse_args(argv)
    try:
        if args.order:
            for path in dag_order(load_specs(args.order)):
                print(path)
            return 0
        specs = load_specs(args.specs or VARIANTS[args.variant])
        dag_order(specs)  # refuse a broken folder before touching the cluster
        deploy(connect(args.address, args.timeout), specs, args.project, args.update)
    except DeployError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
