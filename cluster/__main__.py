"""`./run cluster` (up, then a port-forward of the API to http://127.0.0.1:8000 until Ctrl-C),
`python -m cluster up --no-forward` (up only: for tests and scripts), `./run cluster down`,
`python -m cluster build` (the node image and everything on it, and Dapr's images, without a
cluster), `python -m cluster images` (the app images, and the development stores' where the
official ones cannot be pulled, loaded into the cluster when it is up) and `python -m cluster
report` (results/summary.md again from the results files)."""

import subprocess
import sys

from cluster import kind, release, report
from devstack.binaries import MissingToolError
from devstack.processes import StartupError, say

NO_FORWARD = "--no-forward"


def up(forward: bool) -> None:
    kind.up()
    if forward:
        release.forward(kind.kubectl())


def main() -> int:
    args = sys.argv[1:]
    forward = NO_FORWARD not in args
    args = [arg for arg in args if arg != NO_FORWARD]
    commands = {
        "up": lambda: up(forward),
        "down": kind.down,
        "build": kind.build,
        "images": kind.app_images_only,
        "report": report.write,
    }
    command = args[0] if args else "up"
    if command not in commands or len(args) > 1:
        sys.exit(f"usage: python -m cluster [{'|'.join(commands)}] [{NO_FORWARD}], not {args!r}")
    try:
        commands[command]()
    except (MissingToolError, StartupError, subprocess.TimeoutExpired) as error:
        say(f"cluster {command} failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
