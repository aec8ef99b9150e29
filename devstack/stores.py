"""Private Redis and PostgreSQL servers on loopback, for a developer's run or a test session."""

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack import binaries
from devstack.processes import ManagedProcess, ProcessGroup, StartupError, port_open, wait_until

STARTUP_TIMEOUT_SECONDS = 60.0
POSTGRES_USER = "orders"
POSTGRES_DATABASE = "orders"


@dataclass(frozen=True)
class RedisServer:
    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class PostgresServer:
    process: ManagedProcess
    port: int

    @property
    def connection_string(self) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={POSTGRES_USER} "
            f"dbname={POSTGRES_DATABASE} sslmode=disable connect_timeout=5"
        )


def start_redis(group: ProcessGroup, data_dir: Path, port: int) -> RedisServer:
    """Redis with append-only persistence in `data_dir`, reachable on loopback only. Each write
    is on disk before Redis answers it (`appendfsync always`): an order answered 201, and its
    events in the streams, survive a crash of the machine (docs/design.md, Durability)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binaries.redis_server()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip
    process = group.start(f"redis-{port}", argv)
    wait_until(process, port_open(port), what="starting", timeout_seconds=STARTUP_TIMEOUT_SECONDS)
    return RedisServer(process, port)


def start_postgres(group: ProcessGroup, data_dir: Path, port: int) -> PostgresServer:
    """PostgreSQL with its cluster in `data_dir` (created on first use), TCP on loopback only.
    A commit is flushed to disk before it is answered (`fsync`, `synchronous_commit`: both
    PostgreSQL's defaults, written out because the 201 rests on them)."""
    bin_dir = binaries.postgres_bin_dir()
    data_dir = _usable_data_dir(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        _run_as_owner(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", POSTGRES_USER,
             "--auth=trust", "--encoding=UTF8", "--no-sync"],
        )  # fmt: skip
    argv = _as_owner(
        [str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
         "-c", "max_connections=200", "-c", "fsync=on", "-c", "synchronous_commit=on"],
    )  # fmt: skip
    process = group.start(f"postgres-{port}", argv)
    server = PostgresServer(process, port)
    wait_until(
        process,
        _accepting_connections(bin_dir, port),
        what="starting",
        timeout_seconds=STARTUP_TIMEOUT_SECONDS,
    )
    _create_database(bin_dir, server)
    return server


def _accepting_connections(bin_dir: Path, port: int) -> Callable[[], bool]:
    # An open port is not enough: a starting (or recovering) server refuses sessions.
    def check() -> bool:
        command = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-t", "1"]
        return subprocess.run(command, capture_output=True, timeout=10, check=False).returncode == 0

    return check


def _create_database(bin_dir: Path, server: PostgresServer) -> None:
    # The cluster's first database is named after its user only with createdb; do it once.
    psql = [str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U", POSTGRES_USER]
    exists = subprocess.run(
        [*psql, "-d", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname = '{POSTGRES_DATABASE}'"],  # noqa: S608
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if exists.returncode != 0:
        raise StartupError(f"PostgreSQL on port {server.port} refused psql: {exists.stderr}")
    if exists.stdout.strip() != "1":
        subprocess.run(
            [*psql, "-d", "postgres", "-c", f"CREATE DATABASE {POSTGRES_DATABASE}"],
            capture_output=True, timeout=30, check=True,
        )  # fmt: skip


# PostgreSQL refuses to run as root: as root, it runs as the `postgres` system user.
def _needs_other_user() -> bool:
    return os.geteuid() == 0


def _as_owner(argv: list[str]) -> list[str]:
    if not _needs_other_user():
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def _run_as_owner(argv: list[str]) -> None:
    result = subprocess.run(
        _as_owner(argv), capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise StartupError(f"{argv[0]} failed: {result.stdout}{result.stderr}")


def _usable_data_dir(data_dir: Path) -> Path:
    """`data_dir`, owned by the user PostgreSQL runs as; a private temporary directory instead
    when that user cannot reach it (a project checked out under a private home directory)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _needs_other_user():
        return data_dir
    shutil.chown(data_dir, "postgres", "postgres")
    reachable = (
        subprocess.run(_as_owner(["test", "-w", str(data_dir)]), timeout=10, check=False).returncode
        == 0
    )
    if reachable:
        return data_dir
    # Named after `data_dir`, so a restart finds the same cluster again.
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    fallback = Path(tempfile.gettempdir()) / f"order-service-postgres-{digest}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(fallback, "postgres", "postgres")
    return fallback
