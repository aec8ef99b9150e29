"""Processes started through a ProcessGroup stop with it, and with its owner however it dies."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from core.config import PROJECT_ROOT
from devstack.processes import STOP_GRACE_SECONDS, ProcessGroup
from tests.polling import wait_for
from tests.processes import Process, descendants

# An owner of a group: a shell with a child of its own in one process group, a lone process in
# another, then nothing until it is killed.
OWNER = """
import time
from devstack.processes import ProcessGroup

group = ProcessGroup()
group.start("shell", ["sh", "-c", "sleep 600 & sleep 600; true"])
group.start("sleeper", ["sleep", "600"])
time.sleep(600)
"""


def test_what_a_group_started_is_gone_once_it_is_stopped() -> None:
    before = descendants(os.getpid())
    with ProcessGroup() as group:
        group.start("sleeper", ["sleep", "600"])
        started = descendants(os.getpid()) - before
    guardian = Path(sys.executable).name[:15]  # as /proc cuts a command's name
    assert {p.name for p in started} == {"sleep", guardian}
    assert [p for p in started if p.alive()] == []


def test_an_owner_killed_by_sigkill_leaves_nothing_running() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=PROJECT_ROOT)
    started: set[Process] = set()
    try:

        def all_started() -> bool:
            started.update(descendants(owner.pid))
            return sum(p.name == "sleep" for p in started) == 3

        wait_for(all_started, what="the owner's processes started", timeout_seconds=30)
        owner.kill()
        owner.wait(timeout=10)
        wait_for(
            lambda: not [p for p in started if p.alive()],
            what="the owner's processes gone",
            timeout_seconds=STOP_GRACE_SECONDS,  # they all stop at once on SIGTERM
        )
    finally:
        owner.kill()
        owner.wait(timeout=10)
        for leftover in started:
            if leftover.alive():
                os.kill(leftover.pid, signal.SIGKILL)
