"""Which streams the placer trims, and when it does not (the trimming itself runs against a
real Redis: tests/integration/test_stream_trim.py)."""

import asyncio

import pytest
from redis.asyncio.connection import SSLConnection

from core.config import Settings
from placer.stream_trim import redis_client, stream_trimmer, streams_of


def test_the_streams_are_the_orders_their_dead_letters_and_the_outbox() -> None:
    settings = Settings(_env_file=None, OUTBOX_TOPIC="ns1order-apiordersoutbox")
    assert streams_of(settings) == ["orders", "orders-deadletter", "ns1order-apiordersoutbox"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"STREAM_TRIM_INTERVAL_SECONDS": 10},  # no Redis named
        {"STREAMS_REDIS_HOST": "127.0.0.1:6379", "STREAM_TRIM_INTERVAL_SECONDS": 0},
    ],
)
def test_no_trimming_without_a_redis_or_an_interval(overrides: dict[str, object]) -> None:
    assert stream_trimmer(Settings(_env_file=None, **overrides)) is None  # type: ignore[arg-type]


def test_a_trimmer_when_a_redis_is_named() -> None:
    trimmer = stream_trimmer(Settings(_env_file=None, STREAMS_REDIS_HOST="127.0.0.1:6380"))
    assert trimmer is not None
    asyncio.run(trimmer.aclose())


def test_the_client_connects_as_the_sidecar_does() -> None:
    settings = Settings(
        _env_file=None,
        STREAMS_REDIS_USERNAME="placer",
        STREAMS_REDIS_PASSWORD="s3cret",
        STREAMS_REDIS_TLS=True,
        STREAM_TRIM_TIMEOUT_SECONDS=2,
    )
    client = redis_client("[fd00::7]:6380", settings)
    pool = client.connection_pool
    assert pool.connection_class is SSLConnection
    assert {name: pool.connection_kwargs[name] for name in EXPECTED} == {
        "host": "fd00::7",
        "port": 6380,
        "username": "placer",
        "password": "s3cret",
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
    }
    asyncio.run(client.aclose())


def test_no_password_is_sent_when_none_is_set() -> None:
    client = redis_client("redis:6379", Settings(_env_file=None))
    assert client.connection_pool.connection_kwargs["password"] is None
    assert client.connection_pool.connection_class is not SSLConnection
    asyncio.run(client.aclose())


EXPECTED = ("host", "port", "username", "password", "socket_timeout", "socket_connect_timeout")
