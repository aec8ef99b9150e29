"""Where an order's CPU goes: the CPU time of each process the benchmark started, from /proc,
summed by role (API workers, each sidecar, the stores, the placer, the load generator)."""

import os
import resource
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
LOAD_GENERATOR = "wrk"
# A Python process run as `python -m <module>` takes the role of its module; any other, the
# first of ROLES found in its command line. A process with neither (uvicorn's workers,
# PostgreSQL's backends) takes its parent's.
MODULE_ROLES = {"app": "api", "placer": "placer", "devstack": "launcher"}
ROLES = (
    ("bench.peers", "peer app"),
    ("redis-server", "redis"),
    ("postgres", "postgres"),
)


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far, by role."""

    seconds: dict[str, float]


def sample() -> CpuSample:
    """The CPU time of every live process below this one, and of the finished load generators
    (waited-for children: wrk runs to completion under subprocess.run)."""
    processes = _processes()
    roles: dict[int, str] = {}
    totals: dict[str, float] = {}
    for pid in _descendants(os.getpid(), processes):
        ppid, argv, cpu = processes[pid]
        role = _role(argv) or roles.get(ppid, "other")
        roles[pid] = role
        totals[role] = totals.get(role, 0.0) + cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    totals[LOAD_GENERATOR] = children.ru_utime + children.ru_stime
    return CpuSample(totals)


def ms_per_order(before: CpuSample, after: CpuSample, orders: int) -> dict[str, float]:
    """Each role's CPU milliseconds per order between two samples, and their total."""
    spent = {
        role: after.seconds[role] - before.seconds.get(role, 0.0)
        for role in after.seconds
        if role in before.seconds  # the load generator always is
    }
    per_order = {role: round(seconds * 1000 / max(orders, 1), 3) for role, seconds in spent.items()}
    service = sum(v for role, v in per_order.items() if role != LOAD_GENERATOR)
    return {**dict(sorted(per_order.items())), "total": round(service, 3)}


def _role(argv: list[str]) -> str | None:
    if argv and Path(argv[0]).name == "daprd":
        app_id = argv[argv.index("--app-id") + 1] if "--app-id" in argv else "?"
        return f"daprd {app_id}"
    if "-m" in argv[:-1] and (module := argv[argv.index("-m") + 1]) in MODULE_ROLES:
        return MODULE_ROLES[module]
    command = " ".join(argv)
    return next((role for marker, role in ROLES if marker in command), None)


def _processes() -> dict[int, tuple[int, list[str], float]]:
    """pid → (parent pid, command line, CPU seconds) of every process readable now."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone since the listing
            continue
        # Fields after the command name, which may hold spaces: state, ppid, ..., utime, stime.
        fields = stat.rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
        found[int(entry.name)] = (int(fields[1]), [arg for arg in argv if arg], cpu)
    return found


def _descendants(root: int, processes: dict[int, tuple[int, list[str], float]]) -> list[int]:
    """Parents before their children, so a child can take its parent's role."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    ordered, frontier = [], list(children.get(root, []))
    while frontier:
        pid = frontier.pop(0)
        ordered.append(pid)
        frontier.extend(children.get(pid, []))
    return ordered
