"""The cluster's programs, built from their Go modules (cluster/go/<name>/ pins each): the
Kubernetes binaries, containerd, etcd, CoreDNS and pause. Each build is cached under
CACHE_DIR/cluster/bin/<name>-<version>-<hash of our go.mod, go.sum, main.go>/; Go's own build
cache (GOCACHE, shared with every other Go build here) makes a rebuild after a change cheap."""

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cluster.steps import run_logged
from cluster.versions import (
    CONTAINERD_VERSION,
    COREDNS_VERSION,
    DAPR_VERSION,
    ETCD_VERSION,
    KUBE_ROUTER_VERSION,
    KUBERNETES_VERSION,
    METRICS_SERVER_VERSION,
)
from core.config import PROJECT_ROOT
from devstack.binaries import CACHE_DIR, MissingToolError, _file_lock
from devstack.processes import say

MODULES_DIR = PROJECT_ROOT / "cluster" / "go"
BIN_DIR = CACHE_DIR / "cluster" / "bin"
BUILD_TIMEOUT_SECONDS = 3 * 3600
BUILD_RECORD = "build.json"
KUBERNETES_COMMANDS = (
    "kubeadm", "kubelet", "kubectl", "kube-apiserver", "kube-controller-manager",
    "kube-scheduler", "kube-proxy",
)  # fmt: skip
# Dapr's scheduler is not here: its go-etcd-cron module is refused by the Go module proxy.
DAPR_COMMANDS = ("daprd", "operator", "injector", "sentry", "placement")


@dataclass(frozen=True)
class GoBuild:
    name: str  # the module's directory under cluster/go
    version: str  # the upstream version it builds (names the cache)
    packages: tuple[str, ...] = (".",)
    ldflags: str = "-s -w"
    tags: str = ""
    node: bool = True  # goes into the node image (Dapr's images are loaded after `up`)


def _kubernetes_ldflags() -> str:
    """The version kubeadm and the components report (and kubeadm checks), as Kubernetes'
    own build stamps it (hack/lib/version.sh)."""
    minor = KUBERNETES_VERSION.split(".")[1]
    stamps = {"gitVersion": KUBERNETES_VERSION, "gitMajor": "1", "gitMinor": minor,
              "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z"}  # fmt: skip
    flags = ["-s", "-w"]
    for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in stamps.items()]
    return " ".join(flags)


def _dapr_ldflags() -> str:
    """The version the binaries report, as Dapr's Makefile stamps it."""
    version = DAPR_VERSION.lstrip("v")
    return (
        f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={version}"
        f" -X github.com/dapr/kit/logger.DaprVersion={version}"
    )


BUILDS = {
    build.name: build
    for build in (
        GoBuild(
            "kubernetes",
            KUBERNETES_VERSION,
            tuple(f"k8s.io/kubernetes/cmd/{command}" for command in KUBERNETES_COMMANDS),
            ldflags=_kubernetes_ldflags(),
        ),
        GoBuild(
            "containerd",
            CONTAINERD_VERSION,
            tuple(
                f"github.com/containerd/containerd/v2/cmd/{command}"
                for command in ("containerd", "containerd-shim-runc-v2", "ctr")
            ),
            ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version="
            + CONTAINERD_VERSION,
            # As kind builds it: no snapshotters that need cgo or kernel modules we lack.
            tags="no_aufs no_zfs no_btrfs no_devmapper",
        ),
        GoBuild("etcd", ETCD_VERSION),
        GoBuild("coredns", COREDNS_VERSION),
        GoBuild("pause", "v1"),
        GoBuild(
            "dapr",
            DAPR_VERSION,
            tuple(f"github.com/dapr/dapr/cmd/{command}" for command in DAPR_COMMANDS),
            ldflags=_dapr_ldflags(),
            # As the sidecar of the local stack: the stable components only (the tag
            # selects daprd's component registry; the control plane has no tagged files).
            tags="stablecomponents",
            node=False,
        ),
        GoBuild(
            "metrics-server",
            METRICS_SERVER_VERSION,
            ("sigs.k8s.io/metrics-server/cmd/metrics-server",),
            # As its Makefile stamps it (the version `--version` and the API report).
            ldflags=f"-s -w -X k8s.io/client-go/pkg/version.gitVersion={METRICS_SERVER_VERSION}",
            node=False,
        ),
        GoBuild(
            "kube-router",
            KUBE_ROUTER_VERSION,
            ("github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",),
            ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version="
            + KUBE_ROUTER_VERSION,
            node=False,
        ),
    )
}


def target(name: str) -> Path:
    """Where BUILDS[name]'s programs are cached."""
    build = BUILDS[name]
    module = MODULES_DIR / build.name
    source_hash = hashlib.sha256()
    for file in ("go.mod", "go.sum", "main.go"):
        if (module / file).exists():
            source_hash.update((module / file).read_bytes())
    return BIN_DIR / f"{build.name}-{build.version}-{source_hash.hexdigest()[:12]}"


def binaries(name: str) -> Path:
    """The directory holding the programs of BUILDS[name], built on first use."""
    build = BUILDS[name]
    module = MODULES_DIR / build.name
    target_dir = target(name)
    if target_dir.is_dir():
        return target_dir
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with _file_lock(BIN_DIR / f".{build.name}.lock"):
        if not target_dir.is_dir():
            _build(build, module, target_dir)
    return target_dir


def programs(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.name != BUILD_RECORD)


def build_record(name: str) -> dict[str, object]:
    """What the cold build of BUILDS[name] took ({} if not recorded)."""
    record = target(name) / BUILD_RECORD
    return json.loads(record.read_text()) if record.exists() else {}


def _build(build: GoBuild, module: Path, target: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise MissingToolError(f"Go (1.26 or newer) is needed to build {build.name}")
    say(f"Building {build.name} {build.version} from the Go module proxy (first time only)")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    started = time.monotonic()
    command = ["nice", "-n", "19", go, "build", "-v", "-trimpath", "-ldflags", build.ldflags]
    if build.tags:
        command += ["-tags", build.tags]
    lines = run_logged(
        [*command, "-o", f"{partial}/", *build.packages],
        what=f"{build.name} build",
        log_name=f"go-build-{build.name}",
        timeout_seconds=BUILD_TIMEOUT_SECONDS,
        env={**os.environ, "CGO_ENABLED": "0"},
        cwd=module,
    )
    # How long the cold build took, for the results of later (cached) runs.
    seconds = round(time.monotonic() - started, 1)
    (partial / BUILD_RECORD).write_text(json.dumps({"seconds": seconds, "packages": lines}))
    partial.rename(target)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.0f} MiB" for p in programs(target))
    say(f"Built {build.name}: {sizes}")
