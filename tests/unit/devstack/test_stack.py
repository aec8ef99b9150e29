"""How `./run` has the apps log: text for a developer at a terminal, JSON for anyone else."""

import pytest

from core.config import Environment, LogFormat
from devstack.stack import apps_log_format


@pytest.mark.parametrize(
    ("environment", "terminal", "expected"),
    [
        (Environment.DEVELOPMENT, True, LogFormat.TEXT),
        (Environment.DEVELOPMENT, False, LogFormat.JSON),  # output to a file or a pipe
        (Environment.PRODUCTION, True, LogFormat.JSON),
        (Environment.PRODUCTION, False, LogFormat.JSON),
    ],
)
def test_unset_log_format_is_text_only_in_development_at_a_terminal(
    environment: Environment, terminal: bool, expected: LogFormat
) -> None:
    assert apps_log_format(None, environment, terminal=terminal) is expected


@pytest.mark.parametrize("configured", list(LogFormat))
@pytest.mark.parametrize("environment", list(Environment))
def test_log_format_set_explicitly_always_wins(
    configured: LogFormat, environment: Environment
) -> None:
    for terminal in (True, False):
        assert apps_log_format(configured, environment, terminal=terminal) is configured
