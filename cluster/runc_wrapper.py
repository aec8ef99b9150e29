"""A runc front end for hosts whose capability bounding set lacks some capabilities (some VMs
drop CAP_SYS_RESOURCE): a `--privileged` container asks for every capability, runc cannot
grant the missing ones and fails ("unable to apply caps"). This drops them from the container's
spec (`create`, `run`) or the process's (`exec --process`) and runs the real runc.

Usage (as a Docker runtime): runc_wrapper.py <real runc> <runc arguments...>
It runs under the engine, outside the project's environment: the standard library only.
"""

import json
import os
import sys
from pathlib import Path

# Linux capability numbers (include/uapi/linux/capability.h), by name as OCI specs write them.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip


RUNC_COMMANDS = {
    "checkpoint", "create", "delete", "events", "exec", "features", "kill", "list", "pause",
    "ps", "restore", "resume", "run", "spec", "start", "state", "update",
}  # fmt: skip


def missing_capabilities() -> set[str]:
    """The capabilities this kernel knows that our bounding set lacks."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    bounding = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    known = CAPABILITIES[: last + 1]
    return {f"CAP_{name}" for bit, name in enumerate(known) if not bounding & (1 << bit)}


def spec_file(arguments: list[str]) -> Path | None:
    """The JSON whose capabilities runc will apply, for the commands that apply any."""
    # Global options come first, some with values ("--log-format json"): find the command.
    command = next((word for word in arguments if word in RUNC_COMMANDS), None)
    if command in {"create", "run"}:
        bundle = _option(arguments, "--bundle") or _option(arguments, "-b") or "."
        return Path(bundle) / "config.json"
    if command == "exec":
        process = _option(arguments, "--process") or _option(arguments, "-p")
        return Path(process) if process else None
    return None


def _option(arguments: list[str], name: str) -> str | None:
    for index, word in enumerate(arguments):
        if word == name and index + 1 < len(arguments):
            return arguments[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def drop_capabilities(path: Path, missing: set[str]) -> None:
    document = json.loads(path.read_text())
    process = document.get("process", document)  # config.json nests it; --process is it
    sets = process.get("capabilities") or {}
    for kind, names in sets.items():
        sets[kind] = [name for name in names if name not in missing]
    path.write_text(json.dumps(document))


def main() -> None:
    real_runc, arguments = sys.argv[1], sys.argv[2:]
    missing = missing_capabilities()
    target = spec_file(arguments)
    if missing and target is not None and target.is_file():
        drop_capabilities(target, missing)
    os.execv(real_runc, [real_runc, *arguments])  # noqa: S606 - the engine's own arguments


if __name__ == "__main__":
    main()
