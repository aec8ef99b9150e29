"""Long-running steps: their progress on the terminal, their output in a log file, and the time
each stage took, written to cluster/results/latest.json for the README to link."""

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cluster import report
from devstack.binaries import CACHE_DIR, MissingToolError
from devstack.processes import say

LOG_DIR = CACHE_DIR / "cluster" / "logs"
RESULTS = report.RESULTS_DIR / "latest.json"
# Stages that tell a warm `up` (a new cluster from cached parts) from others.
CLUSTER_CREATE = "cluster create"
APP_IMAGES = "app images"
PROGRESS_EVERY_SECONDS = 60.0


def run_logged(
    command: Sequence[str],
    *,
    what: str,
    log_name: str,
    timeout_seconds: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Runs `command` with its output in LOG_DIR/<log_name>.log and a progress line a minute
    (lines of output so far: `go build -v` writes one a package); its tail on failure.
    Returns the number of lines."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name}.log"
    started = time.monotonic()
    last_said = started
    lines = 0
    with log_path.open("w") as log:
        process = subprocess.Popen(
            list(command),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            lines += 1
            if time.monotonic() - last_said > PROGRESS_EVERY_SECONDS:
                last_said = time.monotonic()
                say(f"  {what}: {last_said - started:.0f} s, {lines} lines (log: {log_path})")
        returncode = process.wait(timeout=max(1.0, timeout_seconds - (time.monotonic() - started)))
    if returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        sys.stderr.write("\n".join(tail) + "\n")
        raise MissingToolError(f"{what} failed (exit {returncode}); log: {log_path}")
    return lines


@dataclass
class Stages:
    """Times each stage of a command and records what it found (cached or built)."""

    command: str
    results: Path = RESULTS  # `up` and `build` share it (and cold.json); others have their own
    stages: list[dict[str, object]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, object]]:
        """Times the block; the block may add facts (sizes, "cached": True) to the dict."""
        facts: dict[str, object] = {"stage": name}
        begun = time.monotonic()
        say(f"{name} ...")
        yield facts
        facts["seconds"] = round(time.monotonic() - begun, 1)
        self.stages.append(facts)
        say(f"{name}: done in {facts['seconds']} s")

    def write(self, **extra: object) -> Path:
        """Writes the results file (the last run of the command; a cold run keeps its own)."""
        document = {
            "command": self.command,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "total_seconds": round(time.monotonic() - self.started, 1),
            # Cold: every part was built, none found in the cache.
            "cold": _cold(self.stages),
            "stages": self.stages,
            "cache_bytes": disk_usage(CACHE_DIR / "cluster"),
            **extra,
        }
        self.results.parent.mkdir(parents=True, exist_ok=True)
        self.results.write_text(json.dumps(document, indent=2) + "\n")
        if self.results == RESULTS and document["cold"]:
            shutil.copyfile(RESULTS, RESULTS.with_name("cold.json"))
        if self.results == RESULTS and _warm(self.stages):
            shutil.copyfile(RESULTS, RESULTS.with_name("warm.json"))
        report.write()
        return self.results


def _cold(stages: list[dict[str, object]]) -> bool:
    """Whether the run built every part it has (a run that found some in the cache, or only
    rebuilt the app images, is not the cold figure)."""
    parts = [stage["cached"] for stage in stages if "cached" in stage]
    return bool(parts) and not any(parts)


def _warm(stages: list[dict[str, object]]) -> bool:
    """Whether the run made a new cluster from cached parts (the app images, which change with
    the code, may have been rebuilt): the figure a second `up` gives."""
    made = any(s["stage"] == CLUSTER_CREATE and not s.get("already_up") for s in stages)
    parts = [s["cached"] for s in stages if "cached" in s and s["stage"] != APP_IMAGES]
    return made and bool(parts) and all(parts)


def disk_usage(path: Path) -> dict[str, int]:
    """Bytes in each directory under `path` (du: hard links once, the engine's layers too)."""
    sizes: dict[str, int] = {}
    for child in sorted(path.iterdir()) if path.exists() else []:
        result = subprocess.run(
            ["du", "-sb", str(child)], capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode == 0:
            sizes[child.name] = int(result.stdout.split()[0])
    return sizes
