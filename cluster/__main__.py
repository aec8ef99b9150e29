"""`./run cluster` (up), `./run cluster down`, `python -m cluster build` (the node image and
everything on it, and Dapr's images, without a cluster) and `python -m cluster images` (the app
images, and the development stores' where the official ones cannot be pulled, loaded into the
cluster when it is up)."""

import subprocess
import sys

from cluster import kind
from devstack.binaries import MissingToolError
from devstack.processes import say


def main() -> int:
    commands = {
        "up": kind.up,
        "down": kind.down,
        "build": kind.build,
        "images": kind.app_images_only,
    }
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command not in commands:
        sys.exit(f"usage: python -m cluster [{'|'.join(commands)}], not {command!r}")
    try:
        commands[command]()
    except (MissingToolError, subprocess.TimeoutExpired) as error:
        say(f"cluster {command} failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
