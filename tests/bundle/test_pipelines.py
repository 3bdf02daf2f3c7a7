"""The Pachyderm specs: valid for their Pachyderm version, wired as the DAG, current.

Also the two ways to deploy them: scripts/deploy.py (pachyderm_sdk) and `make deploy`.
"""

from __future__ import annotations

import graphlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO
from jsonschema import Draft4Validator

SCHEMA_PATH = REPO.parent / "shared" / "pachyderm" / "CreatePipelineRequest.schema.json"
PIPELINES = REPO / "pipelines"
RENDER = REPO / "scripts" / "render_pipelines.py"
DEPLOY = REPO / "scripts" / "deploy.py"

V2_DIRS = (PIPELINES, PIPELINES / "cpu", PIPELINES / "single-stage")
V1_DIR = PIPELINES / "pachyderm-1.x"
V2_SPECS = sorted(path for folder in V2_DIRS for path in folder.glob("*.json"))
V1_SPECS = sorted(V1_DIR.glob("*.json"))
ALL_DIRS = (*V2_DIRS, V1_DIR)
SOURCE_REPOS = {"sample_data", "models"}
DAG_PIPELINES = {"crop", "extract_centers", "generate_heatmaps", "classify", "visualize", "summary"}
GPU_PIPELINES = {"generate_heatmaps", "classify"}
GPU_LIMIT = {"type": "nvidia.com/gpu", "number": 1}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def by_name(folder: Path) -> dict[str, dict[str, Any]]:
    return {spec["pipeline"]["name"]: spec for spec in map(load, folder.glob("*.json"))}


def repos_read(node: dict[str, Any]) -> set[str]:
    if "pfs" in node:
        return {node["pfs"]["repo"]}
    return {
        repo
        for key in ("cross", "join", "group", "union")
        for child in node.get(key, [])
        for repo in repos_read(child)
    }


def test_every_variant_folder_has_its_pipelines():
    for folder in (PIPELINES, PIPELINES / "cpu", V1_DIR):
        assert set(by_name(folder)) == DAG_PIPELINES, rel(folder)
    assert set(by_name(PIPELINES / "single-stage")) == {"breast_cancer"}


# ---- Pachyderm 2.x: the schema from Pachyderm's own source tree

# Keys of these fields are user data (env var names, labels), not proto field names.
FREE_FORM_MAPS = {"env", "node_selector", "labels", "annotations"}


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def to_proto_json(value: Any) -> Any:
    """snake_case field names -> the camelCase JSON names the schema lists."""
    if isinstance(value, list):
        return [to_proto_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        camel(key): (item if key in FREE_FORM_MAPS else to_proto_json(item))
        for key, item in value.items()
    }


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    # The schema declares draft-04; validate with exactly that draft.
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def schema_errors(validator: Draft4Validator, spec: dict[str, Any]) -> list[str]:
    # pachctl strips a top-level "$schema" (an editor hint) before sending a spec.
    spec = {key: value for key, value in spec.items() if key != "$schema"}
    errors = validator.iter_errors(to_proto_json(spec))
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", V2_SPECS, ids=rel)
def test_v2_spec_matches_pachyderm_schema(validator, path):
    assert schema_errors(validator, load(path)) == []


def test_schema_check_catches_unknown_and_1x_fields(validator):
    spec = load(PIPELINES / "classify.json")
    assert schema_errors(validator, {**spec, "$schema": "editor hint"}) == []
    assert schema_errors(validator, {**spec, "standby": True})
    assert schema_errors(validator, {**spec, "datum_timeout": "30m"})
    assert Draft4Validator(validator.schema).is_valid(spec) is False  # snake_case as written


# ---- Pachyderm 1.x: the field list of the last 1.x reference
# pachyderm/pachyderm doc/docs/1.13.x/reference/pipeline_spec.md, "Manifest Format".
# A dict lists the fields allowed inside a field; None is a scalar, list or free-form map.
V1_PFS_FIELDS = {
    "name",
    "repo",
    "branch",
    "glob",
    "lazy",
    "empty_files",
    "s3",
    "join_on",
    "outer_join",
    "group_by",
    "trigger",
}
V1_TRANSFORM_FIELDS = [
    "image",
    "cmd",
    "stdin",
    "err_cmd",
    "err_stdin",
    "env",
    "secrets",
    "image_pull_secrets",
    "accept_return_code",
    "debug",
    "user",
    "working_dir",
    "dockerfile",
]
V1_FIELDS: dict[str, Any] = {
    "pipeline": {"name": None},
    "description": None,
    "metadata": {"annotations": None, "labels": None},
    "transform": dict.fromkeys(V1_TRANSFORM_FIELDS),
    "parallelism_spec": {"constant": None, "coefficient": None},
    "hashtree_spec": {"constant": None},
    "resource_requests": {"memory": None, "cpu": None, "disk": None},
    "resource_limits": {
        **dict.fromkeys(("memory", "cpu", "disk")),
        "gpu": {"type": None, "number": None},
    },
    "sidecar_resource_limits": {"memory": None, "cpu": None},
    "datum_timeout": None,
    "datum_tries": None,
    "job_timeout": None,
    "input": "INPUT",
    "s3_out": None,
    "reprocess_spec": None,
    "output_branch": None,
    "egress": {"URL": None},
    "standby": None,
    "autoscaling": None,
    "cache_size": None,
    "enable_stats": None,
    "service": {"internal_port": None, "external_port": None},
    "spout": {"overwrite": None, "service": None},
    "max_queue_size": None,
    "chunk_spec": {"number": None, "size_bytes": None},
    "scheduling_spec": {"node_selector": None, "priority_class_name": None},
    "pod_spec": None,
    "pod_patch": None,
}
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")


def v1_field_errors(node: dict[str, Any], allowed: Any, where: str) -> list[str]:
    if allowed == "INPUT":
        return v1_input_errors(node, where)
    errors = [f"{where}.{key}: not a 1.x field" for key in node if key not in allowed]
    for key, value in node.items():
        if isinstance(allowed.get(key), (dict, str)):
            errors += v1_field_errors(value, allowed[key], f"{where}.{key}")
    return errors


def v1_input_errors(node: dict[str, Any], where: str) -> list[str]:
    if len(node) != 1:
        return [f"{where}: an input sets exactly one kind, not {sorted(node)}"]
    [(kind, value)] = node.items()
    if kind == "pfs":
        extra = set(value) - V1_PFS_FIELDS
        return [f"{where}.pfs: not 1.x fields: {sorted(extra)}"] if extra else []
    if kind in ("cross", "union", "join", "group"):
        return [
            e
            for i, child in enumerate(value)
            for e in v1_input_errors(child, f"{where}.{kind}[{i}]")
        ]
    return [f"{where}: input kind {kind!r} is not used by this bundle"]


@pytest.mark.parametrize("path", V1_SPECS, ids=rel)
def test_v1_spec_uses_only_1x_fields(path):
    spec = load(path)
    assert v1_field_errors(spec, V1_FIELDS, "spec") == []
    assert GO_DURATION.match(spec["datum_timeout"])
    assert isinstance(spec["datum_tries"], int)


def test_v1_specs_are_the_default_dag_with_standby():
    default, v1 = by_name(PIPELINES), by_name(V1_DIR)
    for name, spec in v1.items():
        assert "autoscaling" not in spec, name  # standby: understood by every 1.x since 1.7.1
        assert spec.get("standby", False) == (name in GPU_PIPELINES), name
        expected = {k: v for k, v in default[name].items() if k != "autoscaling"}
        assert {k: v for k, v in spec.items() if k != "standby"} == expected, name


# ---- the DAG

EXAM = {"glob": "/(*)", "join_on": "$1"}
EXPECTED_INPUTS = {
    "crop": {"pfs": {"repo": "sample_data", "glob": "/*"}},
    "extract_centers": {"pfs": {"repo": "crop", "glob": "/*"}},
    "generate_heatmaps": {
        "cross": [
            {"join": [{"pfs": {"repo": r, **EXAM}} for r in ("crop", "extract_centers")]},
            {"pfs": {"repo": "models", "glob": "/"}},
        ]
    },
    "classify": {
        "cross": [
            {
                "join": [
                    {"pfs": {"repo": r, **EXAM}}
                    for r in ("crop", "extract_centers", "generate_heatmaps")
                ]
            },
            {"pfs": {"repo": "models", "glob": "/"}},
        ]
    },
    "visualize": {
        "join": [{"pfs": {"repo": r, **EXAM}} for r in ("crop", "generate_heatmaps", "classify")]
    },
    "summary": {
        "cross": [
            {"pfs": {"repo": "classify", "glob": "/"}},
            {"pfs": {"repo": "visualize", "glob": "/"}},
        ]
    },
}


@pytest.mark.parametrize("folder", (PIPELINES, PIPELINES / "cpu", V1_DIR), ids=rel)
def test_dag_inputs_are_wired_per_exam(folder):
    assert {name: spec["input"] for name, spec in by_name(folder).items()} == EXPECTED_INPUTS


@pytest.mark.parametrize("folder", ALL_DIRS, ids=rel)
def test_dag_has_no_cycle_and_reads_only_known_repos(folder):
    specs = by_name(folder)
    graph = {name: repos_read(spec["input"]) for name, spec in specs.items()}
    for name, repos in graph.items():
        assert repos <= SOURCE_REPOS | specs.keys(), name
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError
    assert set(order) >= specs.keys()


def test_single_stage_runs_every_stage_on_one_exam_per_datum():
    spec = load(PIPELINES / "single-stage" / "breast_cancer.json")
    assert spec["input"] == {
        "cross": [
            {"pfs": {"repo": "sample_data", "glob": "/*"}},
            {"pfs": {"repo": "models", "glob": "/"}},
        ]
    }
    assert spec["transform"]["cmd"] == ["python3", "-m", "stages.single_stage"]
    assert spec["resource_limits"]["gpu"] == GPU_LIMIT
    assert spec["autoscaling"] is True


# ---- resources, retries, options


def test_gpu_stages_have_gpu_limit_and_autoscaling_cpu_stages_neither():
    for name, spec in by_name(PIPELINES).items():
        gpu = spec.get("resource_limits", {}).get("gpu")
        if name in GPU_PIPELINES:
            assert gpu == GPU_LIMIT, name
            assert spec["autoscaling"] is True, name
            assert spec["transform"]["env"]["BCD_DEVICE"] == "auto", name
        else:
            assert gpu is None, name
            assert "autoscaling" not in spec, name
            assert "BCD_DEVICE" not in spec["transform"].get("env", {}), name


def test_cpu_variant_asks_for_no_gpu():
    for name, spec in by_name(PIPELINES / "cpu").items():
        assert "gpu" not in spec.get("resource_limits", {}), name
        if name in GPU_PIPELINES:
            assert spec["transform"]["env"]["BCD_DEVICE"] == "cpu", name


@pytest.mark.parametrize("path", V2_SPECS + V1_SPECS, ids=rel)
def test_spec_retries_times_out_and_requests_resources(path):
    spec = load(path)
    assert spec["datum_tries"] == 3
    assert re.fullmatch(r"[1-9]\d*s", spec["datum_timeout"])
    requests = spec["resource_requests"]
    assert re.fullmatch(r"\d+(\.\d+)?[KMG]i?", requests["memory"])
    assert requests["cpu"] > 0
    env = spec["transform"].get("env", {})
    if "BCD_DEVICE" in env:
        assert env["BCD_DEVICE"] in ("auto", "cpu")
        assert int(env["BCD_TORCH_THREADS"]) >= 1


def test_classifying_pipelines_run_ten_augmentation_epochs():
    for folder in ALL_DIRS:
        for name, spec in by_name(folder).items():
            if name in ("classify", "breast_cancer"):
                assert spec["transform"]["env"]["BCD_EPOCHS"] == "10", (folder, name)


# ---- entrypoints


@pytest.mark.parametrize("path", V2_SPECS + V1_SPECS, ids=rel)
def test_cmd_runs_an_entrypoint_module_of_ours(path):
    cmd = load(path)["transform"]["cmd"]
    assert cmd[:2] == ["python3", "-m"] and len(cmd) == 3
    package, module = cmd[2].split(".")
    assert package == "stages"
    source = REPO / "stages" / f"{module}.py"
    assert source.is_file(), f"{rel(path)} runs {cmd[2]}, but {rel(source)} does not exist"
    assert 'if __name__ == "__main__":' in source.read_text()


# ---- the committed JSON is what the renderer writes


def run_render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER), *args], capture_output=True, text=True, timeout=60
    )


def test_committed_specs_are_current():
    result = run_render("--check")
    assert result.returncode == 0, result.stderr


def test_check_names_changed_and_unexpected_files(tmp_path):
    assert run_render("--out", str(tmp_path)).returncode == 0
    changed = tmp_path / "cpu" / "crop.json"
    changed.write_text(changed.read_text().replace('"memory": "', '"memory": "9'))
    (tmp_path / "single-stage" / "old.json").write_text("{}")
    result = run_render("--check", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "cpu/crop.json" in result.stderr and "single-stage/old.json" in result.stderr
    assert run_render("--out", str(tmp_path)).returncode == 0  # rewrites and prunes
    assert run_render("--check", "--out", str(tmp_path)).returncode == 0


def test_render_for_another_registry_and_tag(tmp_path):
    result = run_render("--out", str(tmp_path), "--registry", "ghcr.io/me", "--tag", "t1")
    assert result.returncode == 0
    images = [load(p)["transform"]["image"] for p in tmp_path.rglob("*.json")]
    assert len(images) == len(V2_SPECS) + len(V1_SPECS)
    assert all(re.fullmatch(r"ghcr\.io/me/[a-z-]+:t1", image) for image in images)


# ---- scripts/deploy.py


def run_deploy(*args: str, env: dict[str, str] | None = None, python_code: str | None = None):
    argv = [sys.executable, str(DEPLOY), *args]
    if python_code is not None:
        argv = [sys.executable, "-c", python_code, str(DEPLOY), *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def closed_loopback_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("folder", ALL_DIRS, ids=rel)
def test_deploy_order_puts_inputs_first(folder):
    result = run_deploy("--order", str(folder))
    assert result.returncode == 0, result.stderr
    names = [load(Path(line))["pipeline"]["name"] for line in result.stdout.split()]
    specs = by_name(folder)
    assert sorted(names) == sorted(specs)
    for position, name in enumerate(names):
        assert repos_read(specs[name]["input"]) & specs.keys() <= set(names[:position]), name


needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("pachyderm_sdk") is None, reason="pachyderm-sdk not installed"
)


@needs_sdk
def test_deploy_without_cluster_fails_fast_with_a_clear_message():
    port = closed_loopback_port()
    result = run_deploy("--address", f"127.0.0.1:{port}", "--timeout", "1")
    assert result.returncode == 1
    assert f"no Pachyderm cluster reachable at 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@needs_sdk
def test_deploy_finds_the_cluster_in_the_pachctl_config(tmp_path):
    port = closed_loopback_port()
    config = tmp_path / "config.json"
    context = {"pachd_address": f"grpc://127.0.0.1:{port}"}
    config.write_text(json.dumps({"v2": {"active_context": "t", "contexts": {"t": context}}}))
    result = run_deploy("--timeout", "1", env={"PACH_CONFIG": str(config), "PACHD_ADDRESS": ""})
    assert result.returncode == 1
    assert f"no Pachyderm cluster reachable at 127.0.0.1:{port}" in result.stderr


def test_deploy_without_the_client_says_how_to_install_it():
    # Hide pachyderm_sdk as if it were not installed, then run the script as __main__.
    hide_sdk = (
        "import runpy, sys; sys.modules['pachyderm_sdk'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = run_deploy("--address", "127.0.0.1:1", python_code=hide_sdk)
    assert result.returncode == 1
    assert "pip install pachyderm-sdk" in result.stderr


# ---- make deploy (bundle.mk)

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def run_make(target: str, *assignments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "bundle.mk", target, *assignments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_make
@pytest.mark.parametrize("target", ["deploy", "put-sample", "put-models"])
def test_make_targets_need_pachctl(target):
    result = run_make(target, "PACHCTL=/nonexistent/pachctl")
    assert result.returncode != 0
    assert "'/nonexistent/pachctl' not found" in result.stderr


@needs_make
def test_make_deploy_needs_a_reachable_cluster(tmp_path):
    result = run_make("deploy", "PACHCTL=false", f"BUNDLE_SPECS={tmp_path}/specs")
    assert result.returncode != 0
    assert "no Pachyderm cluster reachable" in result.stderr
    assert not (tmp_path / "specs").exists()  # checked before anything else


@needs_make
@pytest.mark.parametrize("variant", ["", "cpu", "single-stage", "pachyderm-1.x"])
def test_make_deploy_creates_repos_then_pipelines_in_dag_order(tmp_path, variant):
    # pachctl cannot be installed here: a stand-in records its argv; `version` succeeds
    # (a cluster answers) and `inspect repo` fails (the repos are new).
    log = tmp_path / "calls"
    pachctl = tmp_path / "pachctl"
    pachctl.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n[ "$1 $2" = "inspect repo" ] && exit 1\nexit 0\n'
    )
    pachctl.chmod(0o755)
    specs = tmp_path / "specs"
    result = run_make(
        "deploy", f"PACHCTL={pachctl}", f"BUNDLE_SPECS={specs}", f"VARIANT={variant}",
        "REGISTRY=registry.example/bcd", "TAG=t9",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "version"
    assert [c for c in calls if c.startswith("create repo")] == [
        "create repo sample_data",
        "create repo models",
    ]
    created = [c.split(" -f ")[1] for c in calls if c.startswith("create pipeline")]
    assert calls.index("create repo models") < calls.index(f"create pipeline -f {created[0]}")
    rendered = by_name(specs / variant)
    names = [load(Path(path))["pipeline"]["name"] for path in created]
    assert sorted(names) == sorted(rendered)
    for position, name in enumerate(names):
        assert repos_read(rendered[name]["input"]) & rendered.keys() <= set(names[:position])
        assert re.fullmatch(
            r"registry\.example/bcd/[a-z-]+:t9", rendered[name]["transform"]["image"]
        )


class FakePachd:
    """A stand-in pachd on loopback, since a real one cannot run here: the four gRPC
    methods deploy.py calls, on the real wire protocol with pachyderm_sdk's messages."""

    def __init__(self, existing_repos: set[str], refuse_pipelines: bool = False):
        import grpc
        from betterproto.lib.google.protobuf import Empty
        from pachyderm_sdk.api import pfs, pps, version

        self.created_repos: list[str] = []
        self.pipelines: list[tuple[dict[str, Any], bool]] = []

        def inspect_repo(request, context):
            if request.repo.name not in existing_repos:
                context.abort(grpc.StatusCode.NOT_FOUND, f"repo {request.repo.name} not found")
            return pfs.RepoInfo(repo=request.repo)

        def create_repo(request, context):
            self.created_repos.append(f"{request.repo.project.name}/{request.repo.name}")
            return Empty()

        def create_pipeline(request, context):
            if refuse_pipelines:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "pipeline already exists")
            self.pipelines.append(
                (json.loads(request.create_pipeline_request_json), request.update)
            )
            return pps.CreatePipelineV2Response()

        def unary(function, request_type, response_type):
            return grpc.unary_unary_rpc_method_handler(
                function,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )

        version_info = version.Version(major=2, minor=12, micro=2)
        services = {
            "versionpb_v2.API": {
                "GetVersion": unary(lambda r, c: version_info, Empty, version.Version)
            },
            "pfs_v2.API": {
                "InspectRepo": unary(inspect_repo, pfs.InspectRepoRequest, pfs.RepoInfo),
                "CreateRepo": unary(create_repo, pfs.CreateRepoRequest, Empty),
            },
            "pps_v2.API": {
                "CreatePipelineV2": unary(
                    create_pipeline, pps.CreatePipelineV2Request, pps.CreatePipelineV2Response
                )
            },
        }
        self.server = grpc.server(ThreadPoolExecutor(max_workers=2))
        for service, methods in services.items():
            self.server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(service, methods)]
            )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> FakePachd:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


@needs_sdk
@pytest.mark.parametrize("update", [False, True])
def test_deploy_creates_missing_repos_then_pipelines_in_dag_order(update):
    with FakePachd(existing_repos={"models"}) as pachd:
        flags = ["--variant", "cpu", "--project", "bcd", *(["--update"] if update else [])]
        result = run_deploy("--address", f"127.0.0.1:{pachd.port}", "--timeout", "5", *flags)
    assert result.returncode == 0, result.stderr
    assert "connected to pachd 2.12.2" in result.stdout
    assert pachd.created_repos == ["bcd/sample_data"]
    specs = by_name(PIPELINES / "cpu")
    sent = [spec for spec, _ in pachd.pipelines]
    names = [spec["pipeline"]["name"] for spec in sent]
    assert sorted(names) == sorted(specs)
    for position, spec in enumerate(sent):
        name = spec["pipeline"]["name"]
        assert repos_read(spec["input"]) & specs.keys() <= set(names[:position]), name
        expected = {**specs[name], "pipeline": {"name": name, "project": {"name": "bcd"}}}
        assert spec == expected
    assert {flag for _, flag in pachd.pipelines} == {update}


@needs_sdk
def test_deploy_reports_what_pachd_refused():
    with FakePachd(existing_repos={"sample_data", "models"}, refuse_pipelines=True) as pachd:
        result = run_deploy("--address", f"127.0.0.1:{pachd.port}", "--timeout", "5")
    assert result.returncode == 1
    assert "crop.json: pipeline already exists (pass --update" in result.stderr
    assert pachd.created_repos == []
