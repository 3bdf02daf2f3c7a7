"""The images built for real, and every stage run inside its image (`make test-images`).

buildah builds every Dockerfile target through `make build-images BUILDER=buildah`, from a
stand-in base (docker/stand-in-base.sh: these machines reach Debian and PyPI but no image
registry). podman (with runc) then runs each stage's image on a small exam with
/pfs/<input> and /pfs/out bind-mounted as Pachyderm lays them out, as the image's own
user, without network: crop and extract_centers in theirs, generate_heatmaps and classify
in the GPU images (on the CPU here, demo weights, one epoch), visualize and summary in
theirs, each stage reading what the previous images wrote. Every output must be byte for
byte what the same stage writes on the host.

Needs root, buildah, podman, runc and debootstrap (.ci/run installs them). Without them
these tests skip with the reason, and fail under BCD_REQUIRE_IMAGE_TESTS=1. They carry the
marker `images`, which `make test` deselects: run them with `make test-images` (or
`pytest -m images`). The buildah store persists in $BCD_IMAGE_STORE (default
/var/tmp/bcd-image-tests), so a rerun reuses the stand-in base and every unchanged layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, python_module_cmd, skip_unless_required, write_exam

from stages.nets.runtime import OPENVINO_CACHE_ENV
from stages.table import DAG, MODELS, SAMPLE_DATA, Stage

pytestmark = pytest.mark.images

STORE = Path(os.environ.get("BCD_IMAGE_STORE", "/var/tmp/bcd-image-tests"))
STORAGE = ["--root", str(STORE / "storage"), "--runroot", str(STORE / "run")]
STORAGE += ["--storage-driver", "overlay"]
TOOLS = ("buildah", "podman", "runc", "debootstrap")
REGISTRY, TAG = "localhost/bcd-test", "test"
# The stand-in's Debian pip reads the system CA bundle: the host's one carries the CA of a
# TLS-intercepting proxy where downloads pass one.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EXAM = "exam-a"
# One test-time augmentation epoch instead of the spec's ten (the same code, a tenth of
# it), and the CPU on both sides: the containers get no GPU, the host may have one.
RUN_ENV = {"BCD_EPOCHS": "1", "BCD_DEVICE": "cpu"}
BUILD_TIMEOUT_S = 1800
# podman's default runtime (crun) cannot set rlimits here; runc can, below the hard limits.
PODMAN_RUN = [
    "run", "--rm", "--runtime", "runc", "--network", "none", "--pull", "never",
    "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
]  # fmt: skip
SPECS = {
    path: json.loads(path.read_text()) for path in sorted((REPO / "pipelines").rglob("*.json"))
}


@dataclass(frozen=True)
class Image:
    ref: str
    cmd: list[str]
    uid: int
    gid: int


def tool(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def inspect(ref: str) -> Image:
    completed = tool("buildah", *STORAGE, "inspect", "--type", "image", ref)
    assert completed.returncode == 0, completed.stderr
    config = json.loads(completed.stdout)["OCIv1"]["config"]
    uid, _, gid = config["User"].partition(":")
    return Image(ref, config["Cmd"], int(uid), int(gid or uid))


@pytest.fixture(scope="session")
def images() -> dict[str, Image]:
    """Every Dockerfile target, built with buildah: target -> image."""
    missing = [name for name in TOOLS if shutil.which(name) is None]
    if missing:
        skip_unless_required(
            f"needs {', '.join(missing)}: apt-get install buildah podman runc debootstrap"
        )
    if os.geteuid() != 0:
        skip_unless_required("needs root (buildah's chroot isolation, podman's bind mounts)")
    STORE.mkdir(parents=True, exist_ok=True)
    base = tool(str(REPO / "docker" / "stand-in-base.sh"), *STORAGE)
    assert base.returncode == 0, base.stdout + base.stderr
    build_flags = "--pull=never"  # the stand-in, never a registry
    if CA_BUNDLE.is_file():
        build_flags += f" -v {CA_BUNDLE}:{CA_BUNDLE}:ro"
    log = STORE / "build-images.log"
    with log.open("w") as handle:
        built = subprocess.run(
            [
                "make", "-f", "bundle.mk", "build-images", "BUILDER=buildah",
                f"BUILDAH=buildah {' '.join(STORAGE)}", f"BUILD_FLAGS={build_flags}",
                f"REGISTRY={REGISTRY}", f"TAG={TAG}",
            ],
            cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
    assert built.returncode == 0, f"make build-images failed; its log: {log}\n" + "\n".join(
        log.read_text().splitlines()[-30:]
    )
    # A rebuild leaves the images it replaced untagged: prune them (podman keeps the layers
    # of tagged images, so the cache of this build stays), else the store grows a build's
    # worth of layers each run.
    pruned = tool("podman", *STORAGE, "image", "prune", "--force")
    assert pruned.returncode == 0, pruned.stderr
    listed = tool(
        sys.executable, "scripts/render_pipelines.py", "--images",
        "--registry", REGISTRY, "--tag", TAG,
    )  # fmt: skip
    pairs = (line.split() for line in listed.stdout.splitlines())
    return {target: inspect(ref) for target, ref in pairs}


def target_of(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":")[0]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(REPO / "pipelines")))
def test_image_cmd_is_the_spec_cmd_and_its_user_is_not_root(images, path):
    transform = SPECS[path]["transform"]
    image = images[target_of(transform["image"])]
    assert image.cmd == transform["cmd"]
    assert image.uid != 0 and image.gid != 0


# What a container reports about itself: its uid, whether a `bcd` script is on PATH, and
# the Python files of the standard library and site-packages that lack their bytecode
# although this Python compiles them (a file of newer syntax cannot have any).
SELF_REPORT = """
import importlib.util, json, os, shutil, sysconfig
from pathlib import Path
uncompiled = []
for root in {sysconfig.get_path("stdlib"), sysconfig.get_path("purelib")}:
    for source in Path(root).rglob("*.py"):
        if Path(importlib.util.cache_from_source(str(source))).exists():
            continue
        try:
            compile(source.read_bytes(), str(source), "exec")
        except SyntaxError:
            continue
        uncompiled.append(str(source))
print(json.dumps({"uid": os.getuid(), "bcd": shutil.which("bcd"), "uncompiled": uncompiled}))
"""


@pytest.mark.parametrize(
    "target", sorted({target_of(s["transform"]["image"]) for s in SPECS.values()})
)
def test_image_runs_as_its_user_with_compiled_python_and_no_bcd_script(images, target):
    image = images[target]
    completed = tool("podman", *STORAGE, *PODMAN_RUN, image.ref, "python3", "-c", SELF_REPORT)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report == {"uid": image.uid, "bcd": None, "uncompiled": []}


# ---- every stage in its image, against the same stage on the host


@dataclass
class StageRun:
    host_out: Path
    image_out: Path
    image: Image
    host: subprocess.CompletedProcess[str]
    container: subprocess.CompletedProcess[str]


def stage_env(stage: Stage) -> dict[str, str]:
    """The default spec's transform.env, as Pachyderm sets it, with RUN_ENV over it."""
    spec = SPECS[REPO / "pipelines" / f"{stage.name}.json"]
    return {**spec["transform"].get("env", {}), **RUN_ENV}


def run_on_host(
    stage: Stage, inputs: dict[str, Path], pfs: Path
) -> subprocess.CompletedProcess[str]:
    pfs.mkdir(parents=True)
    for name, source in inputs.items():
        (pfs / name).symlink_to(source)
    # The stage options the spec sets, not this shell's; the test run's conversion cache stays.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("BCD_") or k == OPENVINO_CACHE_ENV
    }
    return subprocess.run(
        python_module_cmd(f"stages.{stage.module}", "--pfs", str(pfs)),
        cwd=REPO, env={**env, **stage_env(stage)}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def run_in_image(
    stage: Stage, image: Image, inputs: dict[str, Path], out: Path
) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True)
    os.chown(out, image.uid, image.gid)  # Pachyderm's /pfs/out belongs to the pod's user
    mounts = [f"--volume={source}:/pfs/{name}:ro" for name, source in inputs.items()]
    env = [f"--env={key}={value}" for key, value in stage_env(stage).items()]
    return tool(
        "podman", *STORAGE, *PODMAN_RUN, *mounts, f"--volume={out}:/pfs/out", *env, image.ref,
        timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stage_runs(images, tmp_path_factory) -> dict[str, StageRun]:
    """Every stage of the DAG on one small exam, on the host and in its image."""
    root = tmp_path_factory.mktemp("stages")
    write_exam(root / SAMPLE_DATA, EXAM, size=(600, 480), seed=5)
    demo = subprocess.run(
        python_module_cmd("bcd.cli", "models", "demo", str(root / MODELS)),
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    sources = {SAMPLE_DATA: root / SAMPLE_DATA, MODELS: root / MODELS}
    host_repos, image_repos = dict(sources), dict(sources)
    runs: dict[str, StageRun] = {}
    for stage in DAG:
        image = images[stage.image]
        host = run_on_host(
            stage, {n: host_repos[n] for n in stage.inputs}, root / "host" / stage.name
        )
        image_out = root / "image" / stage.name
        container = run_in_image(stage, image, {n: image_repos[n] for n in stage.inputs}, image_out)
        host_repos[stage.name] = root / "host" / stage.name / "out"
        image_repos[stage.name] = image_out
        runs[stage.name] = StageRun(host_repos[stage.name], image_out, image, host, container)
    return runs


def files_under(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", [stage.name for stage in DAG])
def test_stage_in_its_image_writes_what_it_writes_on_the_host(stage_runs, name):
    run = stage_runs[name]
    assert run.host.returncode == 0, run.host.stderr
    assert run.container.returncode == 0, run.container.stderr
    host, image = files_under(run.host_out), files_under(run.image_out)
    assert host, f"{name} wrote nothing on the host"
    assert sorted(image) == sorted(host)
    differing = [str(path) for path in host if image[path] != host[path]]
    assert differing == [], f"{name}: differ between the image and the host"
    owners = {path.stat().st_uid for path in run.image_out.rglob("*")}
    assert owners == {run.image.uid}  # written by the image's non-root user
