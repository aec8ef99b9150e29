"""Stops what a ProcessGroup started when its owner dies without stopping it (even by SIGKILL).

The owner starts this program first, with a pipe as its standard input, and writes a line to
it for each process group it starts (`+PGID`) and stops (`-PGID`). The kernel closes the
owner's end of the pipe when the owner exits, however it exits: at the end of its input,
this program sends SIGTERM to each group still registered, and SIGKILL to those left after
the grace period (seconds, its only argument). A group is a process with everything it
started (uvicorn's workers and reloader, PostgreSQL's backends), which the kernel's
parent-death signal would miss.

Only the standard library: it starts in a few milliseconds, before anything else.
"""

import contextlib
import os
import signal
import sys
import time


def main(grace_seconds: float) -> None:
    groups: set[int] = set()
    try:
        for line in sys.stdin:
            pgid = int(line[1:])
            if line.startswith("+"):
                groups.add(pgid)
            else:
                groups.discard(pgid)
    finally:  # also should a line make no sense: better stopped than left running
        stop(groups, grace_seconds)


def stop(groups: set[int], grace_seconds: float) -> None:
    _signal(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while any(_alive(pgid) for pgid in groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal(groups, signal.SIGKILL)


def _signal(groups: set[int], signum: signal.Signals) -> None:
    for pgid in groups:
        # PermissionError: the group is gone and its number taken by another user's.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


if __name__ == "__main__":
    main(float(sys.argv[1]))
