"""Log set-up shared by both apps."""

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per sidecar call would drown the order's own lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
