"""The Docker engine kind runs its nodes in: a running one when it can run privileged
containers, else a dockerd of the project's own (its own socket, data and state under the
cache directory, nothing system-wide), started here and stopped by `down`."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster import runc_wrapper
from devstack.binaries import CACHE_DIR, MissingToolError, apt_install
from devstack.processes import say

ENGINE_DIR = CACHE_DIR / "cluster" / "docker"
SOCKET = ENGINE_DIR / "docker.sock"
PIDFILE = ENGINE_DIR / "dockerd.pid"
LOG = ENGINE_DIR / "dockerd.log"
CLIENT_TIMEOUT_SECONDS = 30
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 60
WRAPPED_RUNTIME = "runc-capped"
PROBE_IMAGE = "order-service/privileged-probe:empty"
_started: list[subprocess.Popen[bytes]] = []


class DockerUnavailableError(MissingToolError):
    """No engine that runs privileged containers answers, and none can be started here."""


@dataclass(frozen=True)
class Engine:
    host: str | None  # DOCKER_HOST for the docker and kind clients; None: their default
    ours: bool

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.host is not None:
            env["DOCKER_HOST"] = self.host
        return env


def our_host() -> str:
    return f"unix://{SOCKET}"


def engine() -> Engine:
    """An engine that runs `--privileged` containers: the running one if it does, else ours."""
    host = os.environ.get("DOCKER_HOST")
    running = Engine(host=host, ours=host == our_host())
    if running.ours and _answers(running):
        say(f"Docker: using the project's dockerd ({SOCKET})")
        return running
    if _answers(running) and _runs_privileged(running):
        say("Docker: using the running engine")
        return running
    ours = Engine(host=our_host(), ours=True)
    if _answers(ours):
        say(f"Docker: using the project's dockerd ({SOCKET})")
        return ours
    _start_dockerd()
    return ours


def ours_answers() -> bool:
    """Whether the project's dockerd runs (callers that start it can tell whether to stop it)."""
    return _answers(Engine(host=our_host(), ours=True))


def docker(engine: Engine, *args: str, timeout: float = CLIENT_TIMEOUT_SECONDS) -> str:
    """Runs a docker client command against `engine`; its output, or an error with stderr."""
    result = subprocess.run(
        ["docker", *args],
        env=engine.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise MissingToolError(f"docker {' '.join(args[:3])} failed: {result.stderr.strip()}")
    return result.stdout


def _answers(engine: Engine) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        docker(engine, "info", "--format", "{{.ServerVersion}}", timeout=10)
    except (MissingToolError, subprocess.TimeoutExpired):
        return False
    return True


def _runs_privileged(engine: Engine) -> bool:
    """Starts a privileged container from an empty image with a missing entrypoint: an engine
    that can grant every capability fails on the missing file, one that cannot on the caps."""
    archive = io.BytesIO()
    tarfile.open(fileobj=archive, mode="w").close()
    subprocess.run(
        ["docker", "import", "-", PROBE_IMAGE],
        input=archive.getvalue(),
        env=engine.env(),
        capture_output=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--privileged",
            "--network=none",
            "--entrypoint=/absent",
            PROBE_IMAGE,
        ],
        env=engine.env(),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )
    subprocess.run(
        ["docker", "rmi", PROBE_IMAGE], env=engine.env(), capture_output=True, check=False
    )
    if "caps" in result.stderr:
        say("Docker: the running engine cannot run privileged containers on this host")
        return False
    return True


def _start_dockerd() -> None:
    if os.geteuid() != 0:
        raise DockerUnavailableError(
            "no Docker engine that runs privileged containers answers, and starting the "
            "project's dockerd needs root: start Docker (or run as root)"
        )
    dockerd = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if dockerd is None:
        apt_install("docker.io")
        dockerd = shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if dockerd is None:
        raise MissingToolError("docker.io was installed but dockerd was not found")
    started = time.monotonic()
    say(f"Docker: starting the project's dockerd on {SOCKET}")
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    command = [dockerd, "--host", our_host(), "--pidfile", str(PIDFILE)]
    command += ["--data-root", str(ENGINE_DIR / "data"), "--exec-root", str(ENGINE_DIR / "run")]
    command += ["--config-file", str(_daemon_config())]
    with LOG.open("ab") as log:
        # It outlives us: `down` stops it through its pidfile. Kept to reap it if we do.
        _started.append(
            subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        )
    engine = Engine(host=our_host(), ours=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _answers(engine):
        if time.monotonic() > deadline:
            raise MissingToolError(f"dockerd did not answer in {START_TIMEOUT_SECONDS} s: {LOG}")
        time.sleep(0.5)
    say(f"Docker: dockerd ready in {time.monotonic() - started:.0f} s (log: {LOG})")


def _daemon_config() -> Path:
    """dockerd's settings: on a host missing capabilities, the runc wrapper as the default
    runtime (see cluster/runc_wrapper.py)."""
    config: dict[str, object] = {}
    missing = runc_wrapper.missing_capabilities()
    if missing:
        runc = shutil.which("runc", path="/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin")
        if runc is None:
            raise MissingToolError("runc is missing (Debian: apt-get install runc)")
        say(f"Docker: this host lacks {', '.join(sorted(missing))}: runc wrapped to drop it")
        # A copy beside the engine, run by the system's Python: independent of this checkout.
        script = ENGINE_DIR / "runc_wrapper.py"
        shutil.copyfile(runc_wrapper.__file__, script)
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        wrapper = ENGINE_DIR / "runc-capped"
        wrapper.write_text(f'#!/bin/sh\nexec {python} -I {script} {runc} "$@"\n')
        wrapper.chmod(0o755)
        config["runtimes"] = {WRAPPED_RUNTIME: {"path": str(wrapper)}}
        config["default-runtime"] = WRAPPED_RUNTIME
    path = ENGINE_DIR / "daemon.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def stop_ours() -> bool:
    """Stops the project's dockerd if it runs; True if it did."""
    try:
        pid = int(PIDFILE.read_text())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    say(f"Docker: stopping the project's dockerd (pid {pid})")
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    return True


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a dockerd this process started is reaped once it exits."""
    for process in _started:
        if process.pid == pid and process.poll() is not None:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
