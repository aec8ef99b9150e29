"""Finds, installs or builds the programs the stack and its tests run: daprd, redis-server,
PostgreSQL, and the tools of the benchmark and some tests (wrk, vegeta, helm, kind,
Chromium)."""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cluster.versions import HELM_VERSION, KIND_VERSION
from core.config import PROJECT_ROOT
from devstack.config import devstack_settings
from devstack.processes import say

DAPRD_MODULE = PROJECT_ROOT / "daprd"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "order-service"
APT_TIMEOUT_SECONDS = 900
GO_BUILD_TIMEOUT_SECONDS = 3600


class MissingToolError(RuntimeError):
    """A program the stack needs is missing and could not be installed or built."""


def daprd() -> Path:
    """daprd from DAPRD_PATH, PATH or ~/.dapr/bin, else our own build of the pinned runtime."""
    for candidate in (
        devstack_settings.DAPRD_PATH,
        shutil.which("daprd"),
        Path.home() / ".dapr" / "bin" / "daprd",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return build_daprd()


def build_daprd() -> Path:
    """Builds daprd from our Go module; the result is cached by the module's content."""
    source_hash = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        source_hash.update((DAPRD_MODULE / name).read_bytes())
    target = CACHE_DIR / f"daprd-{dapr_version()}-{source_hash.hexdigest()[:12]}" / "daprd"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise MissingToolError(
            "daprd is not installed and Go (1.26 or newer) is needed to build it: install Go, "
            "or put daprd on PATH (or set DAPRD_PATH)."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / ".lock"):
        if not target.exists():
            _go_build(go, target)
    return target


def dapr_version() -> str:
    for line in (DAPRD_MODULE / "go.mod").read_text().splitlines():
        if line.startswith("require github.com/dapr/dapr "):
            return line.split()[-1]
    raise MissingToolError("daprd/go.mod does not require github.com/dapr/dapr")


def _go_build(go: str, target: Path) -> None:
    version = dapr_version()
    say(f"Building daprd {version} from the Go module proxy (first time only, several minutes)")
    partial = target.with_suffix(".partial")
    ldflags = f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={version.lstrip('v')}"
    command = [go, "build", "-v", "-tags", "stablecomponents", "-trimpath"]
    command += ["-ldflags", ldflags, "-o", str(partial), "."]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=DAPRD_MODULE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    output: list[str] = []
    for line in process.stdout:  # `go build -v` names each package as it compiles it
        output.append(line)
        if len(output) % 100 == 0:
            say(f"  daprd build: {len(output)} packages, {time.monotonic() - started:.0f} s")
    if process.wait(timeout=GO_BUILD_TIMEOUT_SECONDS) != 0:
        sys.stderr.writelines(output[-30:])
        raise MissingToolError(f"building daprd failed (exit {process.returncode}), see above")
    partial.rename(target)
    size_mib = target.stat().st_size / 2**20
    say(f"Built daprd in {time.monotonic() - started:.0f} s ({size_mib:.0f} MiB): {target}")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def redis_server() -> Path:
    return _program("redis-server", debian_package="redis-server")


def wrk() -> Path:
    """The HTTP load generator of the benchmark."""
    return _program("wrk", debian_package="wrk")


def chromium() -> Path:
    """The headless browser that loads the API's documentation pages in the tests."""
    return _program("chromium", debian_package="chromium")


def postgres_bin_dir() -> Path:
    """The directory holding initdb and postgres (Debian keeps them off PATH)."""
    found = _find_postgres_bin_dir()
    if found is None:
        apt_install("postgresql")
        found = _find_postgres_bin_dir()
    if found is None:
        raise MissingToolError("PostgreSQL was installed but initdb was not found")
    return found


def _find_postgres_bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_major_version)
    return versions[-1].parent if versions else None


def _major_version(initdb: Path) -> int:
    name = initdb.parent.parent.name
    return int(name) if name.isdigit() else 0


def _program(name: str, *, debian_package: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        apt_install(debian_package)
        found = shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise MissingToolError(f"{debian_package} was installed but {name} was not found")
    return Path(found)


def apt_install(package: str) -> None:
    if not devstack_settings.ALLOW_PACKAGE_INSTALL:
        raise MissingToolError(f"{package} is missing and ALLOW_PACKAGE_INSTALL is not true")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingToolError(
            f"{package} is missing: install it (Debian/Ubuntu: sudo apt-get install {package}), "
            "or point .env at a running server."
        )
    say(f"Installing the Debian package {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _services_not_started():
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        ):
            result = subprocess.run(command, env=env, timeout=APT_TIMEOUT_SECONDS, check=False)
            if result.returncode != 0:
                raise MissingToolError(f"`{' '.join(command)}` failed (exit {result.returncode})")


@contextlib.contextmanager
def _services_not_started() -> Iterator[None]:
    """Keeps apt from starting the package's system-wide service: we run private instances."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink()


HELM_MODULE = f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"
KIND_MODULE = f"sigs.k8s.io/kind@{KIND_VERSION}"
# The benchmark's open-loop load generator: a constant rate, latency without coordinated omission.
VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"


def helm() -> Path:
    """helm from PATH, else built with `go install` at the pinned version."""
    return _go_tool("helm", HELM_MODULE)


def kind() -> Path:
    """kind from PATH, else built with `go install` at the pinned version."""
    return _go_tool("kind", KIND_MODULE)


def vegeta() -> Path:
    """vegeta from PATH, else built with `go install` at the pinned version."""
    return _go_tool("vegeta", VEGETA_MODULE)


def _go_tool(name: str, module: str) -> Path:
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    version = module.rsplit("@", 1)[1]
    target_dir = CACHE_DIR / "tools" / f"{name}-{version}"
    target = target_dir / name
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise MissingToolError(f"{name} is not installed and Go is needed to build it")
    target_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(target_dir / ".lock"):
        if not target.exists():
            say(f"Building {name} {version} with go install (first time only)")
            result = subprocess.run(
                [go, "install", module],
                env={**os.environ, "GOBIN": str(target_dir)},
                capture_output=True,
                text=True,
                timeout=GO_BUILD_TIMEOUT_SECONDS,
                check=False,
            )
            if result.returncode != 0:
                raise MissingToolError(f"go install {module} failed:\n{result.stderr[-3000:]}")
    return target
