"""Headless Chromium for the tests: loads a page on this machine with no network beyond
loopback, and prints its DOM or takes a screenshot. Each run has its own profile and a time
limit, and leaves no browser process behind."""

import contextlib
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from devstack.processes import free_port
from tests.polling import wait_for

BROWSER_TIMEOUT_SECONDS = 60
# Virtual time stands still while fetches are pending, so the page gets its scripts and data
# first; then its timers run on for this long (no real time is spent waiting).
VIRTUAL_TIME_BUDGET_MS = 10_000
WINDOW = (1280, 800)


class Chromium:
    def __init__(self, executable: Path) -> None:
        self.executable = executable

    def dom(self, url: str) -> str:
        """The page's DOM once its scripts have rendered it."""
        return self._run(["--dump-dom", url])

    def screenshot(self, url: str, target: Path) -> None:
        width, height = WINDOW
        self._run(
            [f"--screenshot={target}", f"--window-size={width},{height}", "--hide-scrollbars", url]
        )

    def _run(self, arguments: list[str]) -> str:
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            process = subprocess.Popen(
                [*self._argv(Path(profile)), *arguments],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group, to stop its helpers with it
            )
            try:
                out, err = process.communicate(timeout=BROWSER_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _stop(process)
                raise AssertionError(f"chromium took over {BROWSER_TIMEOUT_SECONDS} s") from None
            _stop(process)
        assert process.returncode == 0, f"chromium exited {process.returncode}:\n{err[-3000:]}"
        return out

    def _argv(self, profile: Path) -> list[str]:
        argv = [
            str(self.executable),
            "--headless",
            f"--user-data-dir={profile}",
            # Every request to anywhere but loopback goes to a proxy that is not there, so a
            # page that needs the internet fails here even on a machine that has it.
            f"--proxy-server=http://127.0.0.1:{free_port()}",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            "--disable-gpu",
            "--disable-dev-shm-usage",  # containers' /dev/shm is small
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-crash-reporter",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
        ]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
        return argv


def _stop(process: subprocess.Popen[str]) -> None:
    """Kills the browser's whole process group and waits until none of it runs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=BROWSER_TIMEOUT_SECONDS)
    wait_for(
        lambda: not group_members(process.pid),
        what=f"chromium's processes (group {process.pid}) to end",
        timeout_seconds=BROWSER_TIMEOUT_SECONDS,
    )


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes of a process group, read from /proc."""
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after it.
            state, _ppid, pgrp = stat_file.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == group and state != "Z":
                members.append(int(stat_file.parent.name))
    return members
