from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from devstack import binaries

Program = Callable[[], Path]  # finds, installs or builds a program; returns where it is
STACK: tuple[Program, ...] = (binaries.daprd, binaries.redis_server, binaries.postgres_bin_dir)
# The programs each part of the suite runs, by folder or file from the project's root: a test
# needs those of every entry it is in. The unit tests run none.
PROGRAMS: dict[str, tuple[Program, ...]] = {
    "tests/integration": STACK,
    "tests/integration/test_bench_load.py": (binaries.wrk,),
    "tests/integration/test_bench_sustained.py": (binaries.vegeta,),
    "tests/faults": STACK,
    "tests/soak": STACK,
    "tests/e2e/test_run_script.py": STACK,
    "tests/e2e/test_cluster.py": (binaries.kind, binaries.helm),
    "tests/e2e/test_docs_browser.py": (binaries.chromium,),
    "tests/chart": (binaries.helm,),
    "tests/chart/test_chart_components.py": STACK,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster suite runs last: its session-wide cluster is deleted right after it, and
    does not take the CPU from the other tests meanwhile."""
    items.sort(key=lambda item: item.get_closest_marker("kind") is not None)


def programs_needed(items: Iterable[pytest.Item], root: Path) -> list[Program]:
    """The programs the tests about to run need, each once, in the order of PROGRAMS."""
    paths = {item.path for item in items if item.get_closest_marker("skip") is None}
    needed = [
        program
        for part, programs in PROGRAMS.items()
        if any(path.is_relative_to(root / part) for path in paths)
        for program in programs
    ]
    return list(dict.fromkeys(needed))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Finds, installs or builds what the selected tests run before the first of them starts:
    the first build of daprd takes minutes, more than pytest-timeout gives one test (its
    timeouts cover each test's setup, call and teardown, not the session's hooks)."""
    if session.config.option.collectonly:
        return
    needed = programs_needed(session.items, session.config.rootpath)
    capture = session.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # the progress of a build or an install
        for program in needed:
            try:
                program()
            except binaries.MissingToolError as error:
                pytest.exit(f"{error}", returncode=pytest.ExitCode.USAGE_ERROR)
