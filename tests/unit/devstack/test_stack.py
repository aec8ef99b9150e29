"""How `./run` has the apps log: text for a developer at a terminal, JSON for anyone else."""

import pytest

from core.config import Environment, LogFormat
from devstack.stack import AppPorts, StoreEndpoints, apps_log_format, placer_command


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


def test_the_placer_is_told_where_the_streams_it_trims_are() -> None:
    stores = StoreEndpoints("127.0.0.1:7001", "s3cret", "host=127.0.0.1")
    command = placer_command(AppPorts(app=1, dapr_http=2, callback=3), stores)
    assert command.env["STREAMS_REDIS_HOST"] == "127.0.0.1:7001"
    assert command.env["STREAMS_REDIS_PASSWORD"] == "s3cret"
    assert "POSTGRES_CONNECTION_STRING" not in command.env  # the placer's sidecar has that
