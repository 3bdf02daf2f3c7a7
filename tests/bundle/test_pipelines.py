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

from stages import table

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
BATCHED_PIPELINES = {"generate_heatmaps", "classify", "breast_cancer"}
BATCHING_ENV = "BCD_DATUM_BATCHING"
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


def without_batching(spec: dict[str, Any]) -> dict[str, Any]:
    """A 2.x spec with datum batching (pachd 2.5+) taken out."""
    spec = {key: value for key, value in spec.items() if key != "datum_set_spec"}
    transform = {key: value for key, value in spec["transform"].items() if key != "datum_batching"}
    env = {key: value for key, value in transform.get("env", {}).items() if key != BATCHING_ENV}
    if env:
        transform["env"] = env
    return {**spec, "transform": transform}


def test_v1_specs_are_the_default_dag_with_standby_and_no_batching():
    default, v1 = by_name(PIPELINES), by_name(V1_DIR)
    for name, spec in v1.items():
        assert "autoscaling" not in spec, name  # standby: understood by every 1.x since 1.7.1
        assert spec["standby"] is True, name
        expected = {k: v for k, v in without_batching(default[name]).items() if k != "autoscaling"}
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


def test_gpu_stages_have_gpu_limit_and_every_pipeline_autoscales():
    for name, spec in by_name(PIPELINES).items():
        gpu = spec.get("resource_limits", {}).get("gpu")
        assert spec["autoscaling"] is True, name
        if name in GPU_PIPELINES:
            assert gpu == GPU_LIMIT, name
            assert spec["transform"]["env"]["BCD_DEVICE"] == "auto", name
        else:
            assert gpu is None, name
            assert "BCD_DEVICE" not in spec["transform"].get("env", {}), name


@pytest.mark.parametrize("path", V2_SPECS + V1_SPECS, ids=rel)
def test_pods_run_as_the_images_user(path):
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    image_users = {
        line.split()[1].split(":")[0] for line in re.findall(r"^USER .+$", dockerfile, re.M)
    }
    assert image_users == {load(path)["transform"]["user"]} == {"10001"}


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


@pytest.mark.parametrize("path", V2_SPECS, ids=rel)
def test_v2_torch_pipelines_batch_datums_and_tell_the_stage(path):
    spec = load(path)
    transform = spec["transform"]
    if spec["pipeline"]["name"] in BATCHED_PIPELINES:
        assert transform["datum_batching"] is True
        # Every 2.x worker has PPS_WORKER_GRPC_PORT: the env says the stage is batched.
        assert transform["env"][BATCHING_ENV] == "1"
        assert set(spec["datum_set_spec"]) == {"number"}
    else:
        assert without_batching(spec) == spec


def test_datum_sets_hold_ten_minutes_of_warm_exams():
    gpu_folders = (PIPELINES, PIPELINES / "single-stage")
    numbers = {}
    for folder in (*gpu_folders, PIPELINES / "cpu"):
        for name, spec in by_name(folder).items():
            warm = table.stage(name).batching
            if name in BATCHED_PIPELINES:
                assert warm is not None
                number = spec["datum_set_spec"]["number"]
                seconds = warm.gpu_s if folder in gpu_folders else warm.cpu_s
                assert 540 <= number * seconds <= 660, (folder, name)
                numbers[rel(folder / name)] = number
    # Hundreds of exams per start on a GPU; on 2 CPU cores a few heatmap exams.
    assert numbers["pipelines/generate_heatmaps"] >= 100
    assert numbers["pipelines/cpu/generate_heatmaps"] <= 5


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


def fake_pachctl(tmp_path: Path, pachd: str = "2.12.2", pipelines: str = "") -> Path:
    """pachctl cannot be installed here: a stand-in that records its argv in `calls`,
    reports `pachd` as the cluster's version, lists `pipelines` (raw JSON) as existing,
    and has no repos (`inspect repo` fails)."""
    (tmp_path / "pipelines.json").write_text(pipelines)
    pachctl = tmp_path / "pachctl"
    pachctl.write_text(
        f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n'
        'case "$1 $2" in\n'
        '  "inspect repo") exit 1 ;;\n'
        f'  "version ") printf "COMPONENT  VERSION\\npachctl  2.12.2\\npachd  {pachd}\\n" ;;\n'
        f'  "list pipeline") cat {tmp_path}/pipelines.json ;;\n'
        "esac\nexit 0\n"
    )
    pachctl.chmod(0o755)
    return pachctl


@needs_make
@pytest.mark.parametrize("variant", ["", "cpu", "single-stage", "pachyderm-1.x"])
def test_make_deploy_creates_repos_then_pipelines_in_dag_order(tmp_path, variant):
    pachctl = fake_pachctl(tmp_path, "1.13.4" if variant == "pachyderm-1.x" else "2.12.2")
    log = tmp_path / "calls"
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
    """A stand-in pachd on loopback, since a real one cannot run here: the gRPC methods
    deploy.py calls, on the real wire protocol with pachyderm_sdk's messages."""

    def __init__(
        self,
        existing_repos: set[str],
        refuse_pipelines: bool = False,
        version: tuple[int, int, int] = (2, 12, 2),
        pipelines: dict[str, list[str]] | None = None,
    ):
        import grpc
        from betterproto.lib.google.protobuf import Empty
        from pachyderm_sdk.api import pfs, pps
        from pachyderm_sdk.api import version as version_pb

        self.created_repos: list[str] = []
        self.pipelines: list[tuple[dict[str, Any], bool]] = []
        self.reprocessed: list[str] = []
        existing_pipelines = pipelines or {}

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
            spec = json.loads(request.create_pipeline_request_json)
            self.pipelines.append((spec, request.update))
            if request.reprocess:
                self.reprocessed.append(spec["pipeline"]["name"])
            return pps.CreatePipelineV2Response()

        def list_pipeline(request, context):
            for name, cmd in existing_pipelines.items():
                yield pps.PipelineInfo(
                    pipeline=pps.Pipeline(name=name),
                    details=pps.PipelineInfoDetails(transform=pps.Transform(cmd=cmd)),
                )

        def unary(function, request_type, response_type):
            return grpc.unary_unary_rpc_method_handler(
                function,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )

        version_info = version_pb.Version(major=version[0], minor=version[1], micro=version[2])
        services = {
            "versionpb_v2.API": {
                "GetVersion": unary(lambda r, c: version_info, Empty, version_pb.Version)
            },
            "pfs_v2.API": {
                "InspectRepo": unary(inspect_repo, pfs.InspectRepoRequest, pfs.RepoInfo),
                "CreateRepo": unary(create_repo, pfs.CreateRepoRequest, Empty),
            },
            "pps_v2.API": {
                "CreatePipelineV2": unary(
                    create_pipeline, pps.CreatePipelineV2Request, pps.CreatePipelineV2Response
                ),
                "ListPipeline": grpc.unary_stream_rpc_method_handler(
                    list_pipeline,
                    request_deserializer=pps.ListPipelineRequest.FromString,
                    response_serializer=pps.PipelineInfo.SerializeToString,
                ),
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
    ours = {name: ["python3", "-m", f"stages.{name}"] for name in DAG_PIPELINES}
    with FakePachd(existing_repos={"models"}, pipelines=ours if update else {}) as pachd:
        flags = ["--variant", "cpu", "--project", "bcd", "--tag", "0.1.0"]
        flags += ["--update"] if update else []
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


EXAMPLE_CMD = ["python3", "/crop.py"]  # stands in for Pachyderm's own example pipelines


def deploy_to(pachd: FakePachd, *flags: str) -> subprocess.CompletedProcess[str]:
    return run_deploy("--address", f"127.0.0.1:{pachd.port}", "--timeout", "5", *flags)


@needs_sdk
@pytest.mark.parametrize(
    ("version", "flags", "message"),
    [
        ((2, 7, 3), [], "pachd 2.7.3 found; scripts/deploy.py creates pipelines with "
         "CreatePipelineV2, which needs pachd 2.8 or later"),
        ((1, 13, 4), [], "pachd 1.13.4 found, but these specs are for Pachyderm 2.x"),
    ],
)  # fmt: skip
def test_deploy_refuses_a_pachd_too_old_for_what_it_uses(version, flags, message):
    with FakePachd(existing_repos=set(), version=version) as pachd:
        result = deploy_to(pachd, *flags)
    assert result.returncode == 1
    assert message in result.stderr
    assert pachd.created_repos == [] and pachd.pipelines == []


@needs_sdk
def test_deploy_stops_at_the_examples_pipelines_and_replaces_them_on_request():
    existing = {"crop": EXAMPLE_CMD, "extract_centers": ["python3", "/centers.py"]}
    with FakePachd(existing_repos=set(), pipelines=existing) as pachd:
        refused = deploy_to(pachd, "--update")
    assert refused.returncode == 1
    assert "not this bundle's exist: crop (cmd python3 /crop.py), extract_centers" in (
        refused.stderr
    )
    assert "REPROCESS=1" in refused.stderr and "pachctl delete pipeline" in refused.stderr
    assert pachd.created_repos == [] and pachd.pipelines == []
    with FakePachd(existing_repos=set(), pipelines=existing) as pachd:
        replaced = deploy_to(pachd, "--reprocess")
    assert replaced.returncode == 0, replaced.stderr
    assert pachd.reprocessed == ["crop", "extract_centers"]
    assert {spec["pipeline"]["name"]: update for spec, update in pachd.pipelines} == {
        **dict.fromkeys(DAG_PIPELINES, False),
        "crop": True,
        "extract_centers": True,
    }


@needs_sdk
def test_deploy_updates_our_own_pipelines_in_place():
    ours = {"crop": ["python3", "-m", "stages.crop"]}
    with FakePachd(existing_repos={"sample_data", "models"}, pipelines=ours) as pachd:
        result = deploy_to(pachd, "--update")
    assert result.returncode == 0, result.stderr
    assert pachd.reprocessed == []
    assert {spec["pipeline"]["name"]: update for spec, update in pachd.pipelines} == {
        **dict.fromkeys(DAG_PIPELINES, False),
        "crop": True,
    }


@needs_sdk
@needs_make
def test_deploy_py_sends_the_specs_make_deploy_renders(tmp_path):
    placement = ["GPU_TOLERATIONS=nvidia.com/gpu:NoSchedule", "GPU_NODE_SELECTOR=pool=gpu"]
    made = run_make(
        "render-bundle",
        "REGISTRY=r.example/me",
        "TAG=abc123",
        f"BUNDLE_SPECS={tmp_path}",
        *placement,
    )
    assert made.returncode == 0, made.stderr
    with FakePachd(existing_repos=set()) as pachd:
        result = deploy_to(
            pachd, "--registry", "r.example/me", "--tag", "abc123",
            "--gpu-tolerations", "nvidia.com/gpu:NoSchedule", "--gpu-node-selector", "pool=gpu",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sent = {spec["pipeline"]["name"]: spec for spec, _ in pachd.pipelines}
    rendered = by_name(tmp_path)
    assert sent.keys() == rendered.keys()
    for name, spec in rendered.items():
        assert sent[name] == {**spec, "pipeline": {"name": name, "project": {"name": "default"}}}
    assert sent["classify"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "EXISTS", "effect": "NO_SCHEDULE"}
    ]


def test_tolerations_and_node_selector_render_valid_on_the_gpu_pipelines_only(validator, tmp_path):
    done = subprocess.run(
        [
            sys.executable, str(RENDER), "--out", str(tmp_path),
            "--gpu-tolerations", "nvidia.com/gpu:NoSchedule, dedicated=ml:NoExecute",
            "--gpu-node-selector", "cloud.google.com/gke-accelerator=nvidia-h100-80gb,pool=gpu",
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tolerations = [
        {"key": "nvidia.com/gpu", "operator": "EXISTS", "effect": "NO_SCHEDULE"},
        {"key": "dedicated", "operator": "EQUAL", "value": "ml", "effect": "NO_EXECUTE"},
    ]
    selector = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb", "pool": "gpu"}
    for folder in ("", "cpu", "single-stage"):
        for name, spec in by_name(tmp_path / folder).items():
            assert schema_errors(validator, spec) == [], (folder, name)
            on_gpu = "gpu" in spec.get("resource_limits", {})
            assert spec.get("tolerations") == (tolerations if on_gpu else None), (folder, name)
            node_selector = spec.get("scheduling_spec", {}).get("node_selector")
            assert node_selector == (selector if on_gpu else None), (folder, name)
    for spec in by_name(tmp_path / "pachyderm-1.x").values():
        assert "tolerations" not in spec
        assert v1_field_errors(spec, V1_FIELDS, "spec") == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--gpu-tolerations", "nvidia.com/gpu:NoSchedul", "is not key[=value]:Effect"),
        ("--gpu-tolerations", "nvidia.com/gpu", "is not key[=value]:Effect"),
        ("--gpu-node-selector", "pool", "is not key=value"),
    ],
)
def test_a_malformed_placement_is_refused_with_the_syntax(tmp_path, option, value, message):
    done = subprocess.run(
        [sys.executable, str(RENDER), "--out", str(tmp_path), option, value],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert message in done.stderr and "e.g." in done.stderr
    assert not any(tmp_path.iterdir())


def test_the_default_tag_follows_the_commit(tmp_path):
    described = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tag = subprocess.run(
        [sys.executable, str(RENDER), "--default", "tag"], capture_output=True, text=True
    )
    assert tag.stdout.strip() == described
    # Outside a git checkout: the project version, with a warning.
    for folder in ("scripts", "stages"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    outside = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "render_pipelines.py"), "--default", "tag"],
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
    )
    assert outside.stdout.strip() == "0.1.0"
    assert "not a git checkout" in outside.stderr


@needs_make
def test_push_refuses_a_dirty_tag_unless_asked(tmp_path):
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n')
    docker.chmod(0o755)
    refused = run_make("push-images", f"DOCKER={docker}", "TAG=abc123-dirty")
    assert refused.returncode != 0
    assert "TAG abc123-dirty is built from uncommitted changes" in refused.stderr
    assert not (tmp_path / "calls").exists()
    allowed = run_make("push-images", f"DOCKER={docker}", "TAG=abc123-dirty", "ALLOW_DIRTY=1")
    assert allowed.returncode == 0, allowed.stderr
    assert (
        "push docker.io/breastcancerpachyderm/crop:abc123-dirty" in (tmp_path / "calls").read_text()
    )


@needs_make
@pytest.mark.parametrize(
    ("variant", "pachd", "message"),
    [
        ("", "1.13.4", "pachd 1.13.4 found, but these specs are for Pachyderm 2.x"),
        ("pachyderm-1.x", "2.12.2", "pachd 2.12.2 found, but these are the Pachyderm 1.x specs"),
    ],
)
def test_make_deploy_refuses_specs_the_pachd_cannot_run(tmp_path, variant, pachd, message):
    pachctl = fake_pachctl(tmp_path, pachd)
    result = run_make(
        "deploy", f"PACHCTL={pachctl}", f"BUNDLE_SPECS={tmp_path}/specs", f"VARIANT={variant}"
    )
    assert result.returncode != 0
    assert message in result.stderr
    calls = (tmp_path / "calls").read_text()
    assert "create" not in calls  # neither repos nor pipelines


@needs_make
def test_make_deploy_stops_at_the_examples_pipelines_and_reprocesses_on_request(tmp_path):
    example = json.dumps(
        {"pipeline": {"name": "crop"}, "details": {"transform": {"cmd": EXAMPLE_CMD}}}
    )
    ours = json.dumps(
        {
            "pipeline": {"name": "summary"},
            "details": {"transform": {"cmd": ["python3", "-m", "stages.summary"]}},
        }
    )
    pachctl = fake_pachctl(tmp_path, pipelines=f"{example}\n{ours}\n")
    specs = tmp_path / "specs"
    refused = run_make("update-pipelines", f"PACHCTL={pachctl}", f"BUNDLE_SPECS={specs}")
    assert refused.returncode != 0
    assert "not this bundle's exist: crop (cmd python3 /crop.py)" in refused.stderr
    assert "create" not in (tmp_path / "calls").read_text()
    reprocess = run_make(
        "update-pipelines", f"PACHCTL={pachctl}", f"BUNDLE_SPECS={specs}", "REPROCESS=1"
    )
    assert reprocess.returncode == 0, reprocess.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert f"update pipeline --reprocess -f {specs}/crop.json" in calls
    assert f"update pipeline --reprocess -f {specs}/summary.json" in calls
    assert f"create pipeline -f {specs}/classify.json" in calls
