"""The processes below one, read from /proc: what a test started, to check it is all gone."""

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    start_ticks: int  # since boot: tells it apart from a later process given the same pid

    def alive(self) -> bool:
        """False once it has exited, also while its zombie waits for a parent to reap it."""
        stat = _stat(self.pid)
        return stat is not None and stat[1][0] != "Z" and int(stat[1][19]) == self.start_ticks


def descendants(pid: int) -> set[Process]:
    children: dict[int, list[Process]] = {}
    for entry in PROC.iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None:
            name, fields = stat
            process = Process(int(entry.name), name, int(fields[19]))
            children.setdefault(int(fields[1]), []).append(process)
    found: set[Process] = set()
    parents = [pid]
    while parents:
        for child in children.get(parents.pop(), []):
            found.add(child)
            parents.append(child.pid)
    return found


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """The command name in /proc/<pid>/stat, and the fields after it (state, ppid, ...)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone
        return None
    name, _, rest = text.partition(" (")[2].rpartition(") ")
    return name, rest.split()
