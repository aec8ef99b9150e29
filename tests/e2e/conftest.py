from collections.abc import Iterator

import pytest

from cluster.docker import DockerUnavailableError, Engine, engine, ours_answers, stop_ours


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--refresh-docs-screenshot",
        action="store_true",
        help="write the screenshot of /docs to docs/images/api-docs.png, for the README",
    )


@pytest.fixture(scope="module")
def running_engine() -> Iterator[Engine]:
    """The cluster's engine; the project's dockerd is stopped afterwards if started here."""
    was_running = ours_answers()
    try:
        found = engine()
    except DockerUnavailableError as error:
        pytest.skip(f"Docker cannot run here: {error}")
    try:
        yield found
    finally:
        if found.ours and not was_running:
            stop_ours()
