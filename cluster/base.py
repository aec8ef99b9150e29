"""Debian images made here without a registry: `debootstrap --variant=minbase` into a
temporary directory, imported into the engine; the root filesystem's tarball is cached, keyed
by the suite and the package list."""

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cluster.docker import Engine, docker
from cluster.steps import run_logged
from cluster.versions import DEBIAN_SUITE
from devstack.binaries import CACHE_DIR, MissingToolError, apt_install
from devstack.processes import say

IMAGES_DIR = CACHE_DIR / "cluster" / "images"
TMP_DIR = CACHE_DIR / "cluster" / "tmp"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_TIMEOUT_SECONDS = 1800
IMPORT_TIMEOUT_SECONDS = 600
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What a kind node runs besides our binaries: systemd as init, Debian's runc under containerd,
# the CNI plugins (ptp, host-local, loopback, portmap), kube-proxy's and the CNI's iptables,
# and the tools kind's entrypoint and kubeadm call.
NODE_PACKAGES = (
    "systemd", "runc", "containernetworking-plugins", "iptables", "nftables", "conntrack",
    "iproute2", "ethtool", "ca-certificates", "mount", "util-linux", "kmod", "procps",
    "libseccomp2", "bash", "e2fsprogs", "socat", "jq",
)  # fmt: skip


def _names(name: str, packages: tuple[str, ...]) -> tuple[str, Path]:
    key = hashlib.sha256(" ".join([DEBIAN_SUITE, *sorted(packages)]).encode()).hexdigest()[:12]
    tag = f"order-service/{name}:{DEBIAN_SUITE}-{key}"
    return tag, IMAGES_DIR / f"{name}-{DEBIAN_SUITE}-{key}.tar"


def image_tag(name: str, packages: tuple[str, ...]) -> str:
    """The tag debian_image gives this image (without making it)."""
    return _names(name, packages)[0]


def build_record(name: str, packages: tuple[str, ...]) -> dict[str, object]:
    """What the debootstrap of this image took ({} if not recorded)."""
    record = _names(name, packages)[1].with_suffix(".json")
    return json.loads(record.read_text()) if record.exists() else {}


def cached(engine: Engine, name: str, packages: tuple[str, ...]) -> bool:
    tag, tarball = _names(name, packages)
    return tarball.exists() or bool(docker(engine, "images", "-q", tag).strip())


def debian_image(engine: Engine, name: str, packages: tuple[str, ...]) -> str:
    """The image `order-service/<name>:<suite>-<key>`: Debian minbase with `packages`,
    from the engine, else from the cached tarball, else built."""
    tag, tarball = _names(name, packages)
    if docker(engine, "images", "-q", tag).strip():
        return tag
    if not tarball.exists():
        _debootstrap(tarball, packages)
    say(f"Importing {tarball.name} as {tag}")
    docker(engine, "import", "--change", f"ENV PATH={PATH}", "--change", 'CMD ["/bin/bash"]',
           str(tarball), tag, timeout=IMPORT_TIMEOUT_SECONDS)  # fmt: skip
    return tag


def _debootstrap(tarball: Path, packages: tuple[str, ...]) -> None:
    debootstrap = shutil.which("debootstrap", path="/usr/sbin:/usr/bin")
    if debootstrap is None:
        apt_install("debootstrap")
        debootstrap = shutil.which("debootstrap", path="/usr/sbin:/usr/bin")
    if debootstrap is None:
        raise MissingToolError("debootstrap was installed but not found")
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=TMP_DIR))
    started = time.monotonic()
    try:
        say(f"debootstrap {DEBIAN_SUITE} with {len(packages)} packages (first time only)")
        command = ["nice", "-n", "19", debootstrap, "--variant=minbase"]
        command += [f"--include={','.join(sorted(packages))}", DEBIAN_SUITE, str(rootfs)]
        run_logged(
            [*command, DEBIAN_MIRROR],
            what="debootstrap",
            log_name=f"debootstrap-{tarball.stem}",
            timeout_seconds=DEBOOTSTRAP_TIMEOUT_SECONDS,
        )
        _slim(rootfs)
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."],
            timeout=IMPORT_TIMEOUT_SECONDS,
            check=True,
        )
        partial.rename(tarball)
        record = {"seconds": round(time.monotonic() - started, 1), "bytes": tarball.stat().st_size}
        tarball.with_suffix(".json").write_text(json.dumps(record))
        say(f"Debian root filesystem: {tarball} ({tarball.stat().st_size / 2**20:.0f} MiB)")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _slim(rootfs: Path) -> None:
    """Drops what an image does not need: downloaded packages, package lists, docs."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*",
                    "usr/share/man/*", "usr/share/locale/*", "var/log/*.log"):  # fmt: skip
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
