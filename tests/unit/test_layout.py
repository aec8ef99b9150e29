"""What each folder may import: the service (core/, app/, placer/, and the exchange stand-in
service, exchange/) nothing of what runs it locally (devstack/), measures it (bench/) or tests
it (tests/); the API and the placer share only core/; the placer reaches the stand-in service
over HTTP only (the service runs the placer's stand-in code); and nothing outside tests/
imports from it."""

import ast
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

# Each package, with the packages it must not import.
FORBIDDEN = {
    "core": {"app", "placer", "exchange", "devstack", "bench", "tests"},
    "app": {"placer", "exchange", "devstack", "bench", "tests"},
    "placer": {"app", "exchange", "devstack", "bench", "tests"},
    "exchange": {"app", "devstack", "bench", "tests"},
    "devstack": {"bench", "tests"},
    "bench": {"tests"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_none_of_the_rooms_above_it(package: str) -> None:
    imports = {
        str(path.relative_to(PROJECT_ROOT)): imported_packages(path) & FORBIDDEN[package]
        for path in (PROJECT_ROOT / package).rglob("*.py")
    }
    assert {path: found for path, found in imports.items() if found} == {}
