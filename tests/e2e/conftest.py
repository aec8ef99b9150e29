import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--refresh-docs-screenshot",
        action="store_true",
        help="write the screenshot of /docs to docs/images/api-docs.png, for the README",
    )
