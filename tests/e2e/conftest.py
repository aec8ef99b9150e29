import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cluster import kind, release, report
from cluster.docker import Engine, engine, ours_answers, stop_ours
from tests.e2e.cluster_support import port_forward


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--refresh-docs-screenshot",
        action="store_true",
        help="write the screenshot of /docs to docs/images/api-docs.png, for the README",
    )


@pytest.fixture(scope="module")
def running_engine() -> Iterator[Engine]:
    """The cluster's engine; the project's dockerd is stopped afterwards if started here.
    Where Docker cannot run, the tests fail with the reason (DockerUnavailableError)."""
    was_running = ours_answers()
    found = engine()
    try:
        yield found
    finally:
        if found.ours and not was_running:
            stop_ours()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Engine]:
    """The cluster; deleted afterwards unless it was up before the tests, also when `up` fails
    midway (a cluster left behind would pass for one a user had up in the next run)."""
    was_up = kind.is_up()
    _suite_state["cluster_was_up"] = was_up
    try:
        yield kind.up()
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


# The cluster suite's outcome, for cluster/results/suite.json: only a run of the whole suite
# (every tests/e2e/test_cluster*.py module, nothing deselected) replaces the figures.
_SUITE_MODULES = "test_cluster*.py"
_suite_reports: dict[str, dict[str, Any]] = {}
_suite_state = {"cluster_was_up": False, "complete": True}


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker("kind") for item in items):
        _suite_state["complete"] = False


def pytest_collection_finish(session: pytest.Session) -> None:
    kind_modules = {item.path.name for item in session.items if item.get_closest_marker("kind")}
    on_disk = {path.name for path in Path(__file__).parent.glob(_SUITE_MODULES)}
    if kind_modules != on_disk:
        _suite_state["complete"] = False


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "kind" not in report.keywords:
        return
    entry = _suite_reports.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0})
    entry["seconds"] += report.duration
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] != "failed":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _suite_reports or not _suite_state["complete"]:
        return
    tests = [
        {"test": nodeid.split("::", 1)[1], **entry} for nodeid, entry in _suite_reports.items()
    ]
    outcomes = Counter(test["outcome"] for test in tests)
    suite = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(sum(test["seconds"] for test in tests), 1),
        "cluster_was_up": _suite_state["cluster_was_up"],
        "outcomes": dict(sorted(outcomes.items())),
        "tests": [{**test, "seconds": round(test["seconds"], 1)} for test in tests],
    }
    report.SUITE.write_text(json.dumps(suite, indent=2) + "\n")
    report.write()
