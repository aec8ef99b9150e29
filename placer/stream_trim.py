"""Trims the Redis streams behind the topics, keeping every entry a consumer group still needs.

Redis Streams keep an entry after every group has acknowledged it, so the orders topic, its
dead-letter topic and the outbox's internal topic would grow by an entry per order for ever.
Dapr's Redis pub/sub trims only by length (`maxLenApprox`) or age (`streamTTL`), at each
publish, whoever still needs the entries: a backlog longer than the cap, or older than the TTL,
would be cut, and the component acknowledges a pending entry that is gone instead of
redelivering it. So the placer trims the streams itself, every STREAM_TRIM_INTERVAL_SECONDS,
with one script per stream (stream_trim.lua) that cuts only what every group has read and
acknowledged. Each placer replica runs it; the script is atomic, so they cannot get in each
other's way. The stream names are the topics (Dapr's Redis pub/sub names a stream after its
topic, and a consumer group after the subscriber's app id).
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.config import Settings
from placer import metrics

logger = logging.getLogger(__name__)

TRIM_SCRIPT = (Path(__file__).parent / "stream_trim.lua").read_text()


@dataclass(frozen=True)
class Trim:
    stream: str
    trimmed: int  # entries removed
    length: int  # entries left
    kept_from: str  # the oldest entry some group still needs; "": no group, left alone


class StreamTrimmer:
    def __init__(self, client: Redis, streams: Sequence[str], *, timeout_seconds: float) -> None:
        self._client = client
        self._script = client.register_script(TRIM_SCRIPT)
        self._streams = list(streams)
        self._timeout_seconds = timeout_seconds

    async def trim(self) -> list[Trim]:
        """Trims each stream once; raises on the first Redis error or timeout."""
        trims = []
        for stream in self._streams:
            async with asyncio.timeout(self._timeout_seconds):
                trimmed, length, kept_from = await self._script(keys=[stream])
            trims.append(Trim(stream, int(trimmed), int(length), as_text(kept_from)))
        return trims

    async def run(self, interval_seconds: float) -> None:
        """Trims every `interval_seconds` until cancelled; a failed round waits for the next."""
        await every(interval_seconds, self._round)

    async def _round(self) -> None:
        try:
            trims = await self.trim()
        except (RedisError, OSError, TimeoutError) as error:
            metrics.STREAM_TRIM_ROUNDS.labels(outcome="failed").inc()
            logger.warning("streams not trimmed this time: %r", error)
            return
        metrics.STREAM_TRIM_ROUNDS.labels(outcome="done").inc()
        for trim in trims:
            metrics.STREAM_ENTRIES.labels(stream=trim.stream).set(trim.length)
            metrics.STREAM_TRIMMED.labels(stream=trim.stream).inc(trim.trimmed)
            logger.debug(
                "stream %s: %d entries trimmed, %d left (from %s)",
                trim.stream,
                trim.trimmed,
                trim.length,
                trim.kept_from or "-",
            )

    async def aclose(self) -> None:
        await self._client.aclose()


async def every(interval_seconds: float, round_: Callable[[], Awaitable[None]]) -> None:
    """Runs `round_` every `interval_seconds` until cancelled. The first round comes at a
    random point of the first interval, so that placers started together do not run together."""
    await asyncio.sleep(random.uniform(0, interval_seconds))  # noqa: S311 (not a secret)
    while True:
        await round_()
        await asyncio.sleep(interval_seconds)


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def streams_of(settings: Settings) -> list[str]:
    """The streams behind the topics: the orders, their dead letters, the outbox's own."""
    return [settings.ORDERS_TOPIC, settings.DEAD_LETTER_TOPIC, settings.OUTBOX_TOPIC]


def stream_trimmer(settings: Settings) -> StreamTrimmer | None:
    """A trimmer of the topics' streams on the Redis that STREAMS_REDIS_HOST names; None when
    trimming is off (no STREAMS_REDIS_HOST, or an interval of 0)."""
    if settings.STREAMS_REDIS_HOST is None or not settings.STREAM_TRIM_INTERVAL_SECONDS:
        return None
    return StreamTrimmer(
        redis_client(settings.STREAMS_REDIS_HOST, settings),
        streams_of(settings),
        timeout_seconds=settings.STREAM_TRIM_TIMEOUT_SECONDS,
    )


def redis_client(address: str, settings: Settings) -> Redis:
    """A client of the Redis at `address` (host:port), as the sidecar connects to it."""
    host, _, port = address.rpartition(":")
    return Redis(
        host=host.strip("[]"),  # an IPv6 address in brackets
        port=int(port),
        username=settings.STREAMS_REDIS_USERNAME,
        password=settings.STREAMS_REDIS_PASSWORD.get_secret_value() or None,
        ssl=settings.STREAMS_REDIS_TLS,
        socket_timeout=settings.STREAM_TRIM_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.STREAM_TRIM_TIMEOUT_SECONDS,
    )
