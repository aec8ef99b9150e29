"""Child processes that always stop with their parent, and waits for them to become ready."""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Self

import httpx

STOP_GRACE_SECONDS = 10.0
LOWEST_TEST_PORT = 20000  # above the well-known and most registered service ports
GUARDIAN = Path(__file__).with_name("guardian.py")


class StartupError(RuntimeError):
    """A process did not come up; the message says which and where its log is."""


def _ports_below_ephemeral_range() -> Iterator[int]:
    """Ports a listener can keep: the kernel never hands them out to outgoing connections.

    Asking the kernel for port 0 returns an ephemeral port, which is free only until the
    probe closes: any client connection (daprd opens hundreds) may take it before the
    server binds it. Each process starts at its own offset and never returns a port twice.
    """
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    first_ephemeral = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    span = first_ephemeral - LOWEST_TEST_PORT
    start = random.randrange(span)  # noqa: S311 - spreads processes apart; not a secret
    for step in range(span):
        yield LOWEST_TEST_PORT + (start + step) % span


_candidate_ports = _ports_below_ephemeral_range()
_candidate_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback port that nothing listens on, outside the kernel's ephemeral range."""
    with _candidate_ports_lock:
        for port in _candidate_ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port left below the ephemeral range")


def say(message: str) -> None:
    """Progress for people watching a terminal; stderr keeps stdout for the apps."""
    print(f"==> {message}", file=sys.stderr, flush=True)  # noqa: T201


class ManagedProcess:
    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path | None) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """Kills the process at once (and its children): a crash, not a shutdown."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_GRACE_SECONDS)

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        # Reap helpers the process left in its group (uvicorn's workers, a reloader's child).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class ProcessGroup:
    """Starts processes in their own sessions and stops them all, newest first. Should we die
    before that, even by SIGKILL, a guardian process stops them (see devstack/guardian.py)."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []
        self._guardian: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        echo: bool = False,
    ) -> ManagedProcess:
        """Starts `argv`. Output goes to `<log_dir>/<name>.log`, and also to our stderr,
        prefixed with the name, when `echo` is set."""
        # Replicas share a name (an app id); their logs get a number after the first.
        same_name = sum(1 for process in self.processes if process.name == name)
        log_name = name if same_name == 0 else f"{name}-{same_name + 1}"
        log_path = None if self.log_dir is None else self.log_dir / f"{log_name}.log"
        self._start_guardian()
        popen = subprocess.Popen(
            argv,
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._tell_guardian(f"+{popen.pid}")  # its process group: it leads a new session
        assert popen.stdout is not None
        sink = None if log_path is None else log_path.open("ab")
        threading.Thread(
            target=_copy_output, args=(popen.stdout, sink, name if echo else None), daemon=True
        ).start()
        process = ManagedProcess(name, popen, log_path)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
            self._tell_guardian(f"-{process.pid}")
        self.processes.clear()
        if self._guardian is not None:
            # With every group stopped, the end of its input lets it go at once.
            assert self._guardian.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self._guardian.stdin.close()
            self._guardian.wait(timeout=STOP_GRACE_SECONDS)
            self._guardian = None

    def _start_guardian(self) -> None:
        if self._guardian is None:
            self._guardian = subprocess.Popen(
                [sys.executable, "-I", str(GUARDIAN), str(STOP_GRACE_SECONDS)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # out of reach of a Ctrl-C meant for us
            )

    def _tell_guardian(self, line: str) -> None:
        assert self._guardian is not None and self._guardian.stdin is not None
        # BrokenPipeError: someone killed the guardian; stopping the processes ourselves
        # still works.
        with contextlib.suppress(BrokenPipeError):
            self._guardian.stdin.write(f"{line}\n".encode())
            self._guardian.stdin.flush()


def _copy_output(source: IO[bytes], sink: IO[bytes] | None, echo_prefix: str | None) -> None:
    with contextlib.ExitStack() as stack:
        if sink is not None:
            stack.enter_context(sink)
        for line in iter(source.readline, b""):
            if sink is not None:
                sink.write(line)
                sink.flush()
            if echo_prefix is not None:
                text = line.decode(errors="replace").rstrip()
                print(f"[{echo_prefix}] {text}", file=sys.stderr, flush=True)  # noqa: T201


def wait_until(
    process: ManagedProcess, ready: Callable[[], bool], *, what: str, timeout_seconds: float
) -> None:
    """Polls `ready` until it holds; fails fast, with the log's tail, if the process exits."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not process.running():
            raise StartupError(f"{process.name} exited while {what}:\n{process.log_tail()}")
        if ready():
            return
        time.sleep(0.1)
    raise StartupError(
        f"{process.name}: {what} took over {timeout_seconds} s:\n{process.log_tail()}"
    )


def port_open(port: int, host: str = "127.0.0.1") -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            return probe.connect_ex((host, port)) == 0

    return check


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            response = httpx.get(url, timeout=1.0, headers=headers)
        except httpx.HTTPError:
            return False
        return response.is_success

    return check
