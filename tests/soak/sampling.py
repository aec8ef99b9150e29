"""What the soak test samples: the resident memory of every process in the stack, read from
/proc, and the size and backlog of the Redis store and broker."""

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from devstack.processes import ManagedProcess
from tests.faults.harness import FaultStack
from tests.integration.stack_fixtures import KEY_PREFIX

PROC = Path("/proc")
ORDER_KEYS = f"{KEY_PREFIX}order-*"
ORDER_EVENTS_KEYS = f"{KEY_PREFIX}order-events-"


@dataclass
class StreamSample:
    length: int  # XLEN: what is unread or pending, and what came since the last trim
    pending: dict[str, int]  # per consumer group: delivered, not yet acknowledged
    lag: dict[str, int | None]  # per consumer group: not yet delivered (None: Redis can't tell)


@dataclass
class StoreSample:
    keys: int  # DBSIZE
    used_memory: int  # INFO memory, bytes
    order_keys: int
    aof_bytes: int  # INFO persistence: the append-only file Redis persists to
    streams: dict[str, StreamSample]

    def pending(self) -> int:
        return sum(sum(stream.pending.values()) for stream in self.streams.values())

    def stream_entries(self) -> int:
        """Entries in all streams: what the placers' trimming has left."""
        return sum(stream.length for stream in self.streams.values())


@dataclass
class Sample:
    seconds: float  # since the first order was sent
    phase: str  # warm-up, steady, end (every answer in), drained (backlogs empty)
    # Per process of the stack, by label: its RSS plus that of its descendants (uvicorn's
    # reloader starts the API in a child process), in KiB; None once it is gone.
    rss_kib: dict[str, int | None]
    pids: dict[str, list[int]]  # the processes each label covers
    store: StoreSample


# Redis forks a child for each background save or AOF rewrite: a copy of itself for seconds,
# whose pages it shares. It is not a restart, and counting its RSS would count Redis twice.
FORKS_TO_SAVE = {"redis-server"}


def stack_processes(stack: FaultStack) -> dict[str, ManagedProcess]:
    """Every process the stack started, under a label that tells the replicas apart."""
    processes = {"redis-server": stack.stores.redis.process}
    for role, apps in (("api", stack.apis), ("placer", stack.placers)):
        for number, running in enumerate(apps, start=1):
            processes[f"{role}-{number}"] = running.app
            processes[f"{role}-{number}-daprd"] = running.sidecar
    return processes


def take_sample(stack: FaultStack, seconds: float, phase: str) -> Sample:
    parents = parent_pids()
    rss: dict[str, int | None] = {}
    pids: dict[str, list[int]] = {}
    for label, process in stack_processes(stack).items():
        children = [] if label in FORKS_TO_SAVE else descendants(process.pid, parents)
        tree = [process.pid, *children] if process.running() else []
        pids[label] = tree
        rss[label] = total_rss_kib(tree)
    return Sample(round(seconds, 1), phase, rss, pids, store_sample(stack.stores.redis.port))


def parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # The command name (field 2) may hold spaces; the fields after it do not.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int, parents: dict[int, int]) -> list[int]:
    children = [child for child, parent in parents.items() if parent == pid]
    return [*children, *(d for child in children for d in descendants(child, parents))]


def total_rss_kib(pids: list[int]) -> int | None:
    values = [rss for rss in map(rss_kib, pids) if rss is not None]
    return sum(values) if values else None


def rss_kib(pid: int) -> int | None:
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None  # it exited since we listed it
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])  # always in kB
    return None  # a zombie has no memory left


def store_sample(port: int) -> StoreSample:
    with redis.Redis(port=port, socket_timeout=10) as client:
        order_keys = sum(
            1
            for key in client.scan_iter(match=ORDER_KEYS, count=1000)
            if not key.decode().startswith(ORDER_EVENTS_KEYS)
        )
        streams = {
            key.decode(): stream_sample(client, key)
            for key in client.scan_iter(count=1000, _type="stream")
        }
        return StoreSample(
            keys=int(client.dbsize()),
            used_memory=int(info(client, "memory")["used_memory"]),
            order_keys=order_keys,
            aof_bytes=int(info(client, "persistence").get("aof_current_size", 0)),
            streams=dict(sorted(streams.items())),
        )


def stream_sample(client: redis.Redis, key: bytes) -> StreamSample:
    pending, lag = {}, {}
    for group in client.xinfo_groups(key):
        name = group["name"].decode()
        pending[name] = int(client.xpending(key, name)["pending"])
        lag[name] = group.get("lag")
    return StreamSample(length=int(client.xlen(key)), pending=pending, lag=lag)


def info(client: redis.Redis, section: str) -> dict[str, Any]:
    return dict(client.info(section))
