from collections.abc import Iterator

import pytest

from cluster import kind, release
from cluster.docker import DockerUnavailableError, Engine, engine, ours_answers, stop_ours
from tests.e2e.cluster_support import port_forward


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


@pytest.fixture(scope="session")
def cluster() -> Iterator[Engine]:
    """The cluster; deleted afterwards unless it was up before the tests."""
    was_up = kind.is_up()
    try:
        running = kind.up()
    except DockerUnavailableError as error:
        pytest.skip(f"Docker cannot run here: {error}")
    try:
        yield running
    finally:
        if not was_up:
            kind.down()


@pytest.fixture(scope="module")
def api_url(cluster: Engine) -> Iterator[str]:
    with port_forward(f"svc/{release.RELEASE}-api", 80, "/health/ready") as url:
        yield url


@pytest.fixture(scope="module")
def exchange_url(cluster: Engine) -> Iterator[str]:
    with port_forward(f"svc/{release.RELEASE}-exchange", 80, "/health/ready") as url:
        yield url
