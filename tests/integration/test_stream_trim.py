"""The trimming of the topics' Redis streams (placer/stream_trim.py): its script on a real Redis
cuts what every consumer group has read and acknowledged, and nothing any group still needs;
then two placers trimming a real stack's streams through a backlog, a failing exchange and its
return."""

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from core.config import settings
from devstack.config import StateStoreKind
from devstack.processes import ProcessGroup, free_port
from devstack.stack import COMPONENTS_DIR, RunningApp, StackOptions, start_replicas, start_sidecar
from devstack.stores import RedisServer, start_redis
from placer.stock_exchange import ExchangeLedger
from placer.stream_trim import StreamTrimmer, Trim
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import Stores, local_stack_options, start_stores
from tests.polling import wait_for
from tests.telemetry import registry_value, scrape, value

STREAM = "orders"
ORDERS = settings.ORDERS_TOPIC
# A plain length cap (the pub/sub component's maxLenApprox) this short would cut every
# backlog below, and none of them may lose an entry.
CAP = 100
BACKLOG = 10 * CAP


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    tmp = tmp_path_factory.mktemp("redis")
    with ProcessGroup(tmp) as group:
        yield start_redis(group, tmp / "data", free_port())


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(port=redis_server.port, socket_timeout=5, decode_responses=True) as client:
        client.flushall()
        yield client


def trim(server: RedisServer, *streams: str) -> list[Trim]:
    async def once() -> list[Trim]:
        trimmer = StreamTrimmer(
            AsyncRedis(port=server.port, socket_timeout=5), streams, timeout_seconds=5
        )
        try:
            return await trimmer.trim()
        finally:
            await trimmer.aclose()

    return asyncio.run(once())


def publish(client: redis.Redis, count: int, stream: str = STREAM) -> list[str]:
    with client.pipeline(transaction=False) as pipe:
        for number in range(count):
            pipe.xadd(stream, {"data": str(number)})
        return [str(entry_id) for entry_id in pipe.execute()]


def read(client: redis.Redis, group: str, count: int, stream: str = STREAM) -> list[str]:
    """Delivers the next `count` entries to a consumer of `group`: they are pending."""
    reply: Any = client.xreadgroup(group, "consumer", {stream: ">"}, count=count)
    [[_, entries]] = reply
    return [str(entry_id) for entry_id, _ in entries]


def ids(client: redis.Redis, stream: str = STREAM) -> list[str]:
    entries: Any = client.xrange(stream)
    return [str(entry_id) for entry_id, _ in entries]


def test_entries_every_group_has_acknowledged_are_trimmed(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    published = publish(client, BACKLOG)
    client.xgroup_create(STREAM, "placer", id="0")
    client.xack(STREAM, "placer", *read(client, "placer", BACKLOG))

    [result] = trim(redis_server, STREAM)

    # The last entry read is kept: the group's position in the stream.
    assert ids(client) == published[-1:]
    assert result == Trim(STREAM, trimmed=BACKLOG - 1, length=1, kept_from=published[-1])


def test_a_backlog_longer_than_any_cap_is_kept_whole(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    published = publish(client, BACKLOG)
    client.xgroup_create(STREAM, "placer", id="0")
    done = read(client, "placer", 10)
    client.xack(STREAM, "placer", *done)

    trim(redis_server, STREAM)

    assert ids(client) == published[9:]  # every entry not yet read, and the last one read


def test_pending_entries_are_kept_also_when_claimed_for_redelivery(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    published = publish(client, BACKLOG)
    client.xgroup_create(STREAM, "placer", id="0")
    delivered = read(client, "placer", BACKLOG)
    oldest_pending, later_pending = delivered[5], delivered[500]
    client.xack(
        STREAM, "placer", *(i for i in delivered if i not in {oldest_pending, later_pending})
    )
    # Redelivery: another consumer claims the oldest pending entry (Dapr's reclaim loop).
    client.xclaim(STREAM, "placer", "other", min_idle_time=0, message_ids=[oldest_pending])

    [result] = trim(redis_server, STREAM)

    assert result.kept_from == oldest_pending
    assert ids(client) == published[5:]
    pending: Any = client.xpending_range(STREAM, "placer", min="-", max="+", count=10)
    assert [p["message_id"] for p in pending] == [oldest_pending, later_pending]
    # Both can still be delivered again, with their content.
    claimed: Any = client.xclaim(
        STREAM, "placer", "consumer", min_idle_time=0, message_ids=[oldest_pending, later_pending]
    )
    assert [entry_id for entry_id, _ in claimed] == [oldest_pending, later_pending]


def test_the_group_furthest_behind_decides(redis_server: RedisServer, client: redis.Redis) -> None:
    """The outbox's internal stream has two groups: the runtime's (the API's app id) and the
    placer's release."""
    published = publish(client, BACKLOG)
    for group in ("order-api", "order-placer"):
        client.xgroup_create(STREAM, group, id="0")
    client.xack(STREAM, "order-api", *read(client, "order-api", BACKLOG))
    client.xack(STREAM, "order-placer", *read(client, "order-placer", 300))

    trim(redis_server, STREAM)

    assert ids(client) == published[299:]


def test_a_group_whose_lag_redis_cannot_tell_keeps_what_it_has_not_read(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    published = publish(client, BACKLOG)
    client.xgroup_create(STREAM, "placer", id="0")
    client.xack(STREAM, "placer", *read(client, "placer", 10))
    client.xdel(STREAM, published[500])  # a hole after the group's position: lag unknown
    groups: Any = client.xinfo_groups(STREAM)
    assert groups[0]["lag"] is None

    trim(redis_server, STREAM)

    assert ids(client) == [i for i in published[9:] if i != published[500]]


def test_a_group_set_back_keeps_what_it_will_read_again(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    published = publish(client, BACKLOG)
    client.xgroup_create(STREAM, "placer", id="0")
    client.xack(STREAM, "placer", *read(client, "placer", BACKLOG))
    client.xgroup_setid(STREAM, "placer", id=published[99])  # an operator replays from here

    trim(redis_server, STREAM)

    assert ids(client) == published[99:]


def test_a_stream_nobody_subscribed_to_yet_is_left_alone(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    published = publish(client, BACKLOG)

    [result, missing] = trim(redis_server, STREAM, "no-such-stream")

    assert ids(client) == published
    assert result == Trim(STREAM, trimmed=0, length=BACKLOG, kept_from="")
    assert missing == Trim("no-such-stream", trimmed=0, length=0, kept_from="")
    assert not client.exists("no-such-stream")


def test_trims_again_after_redis_lost_its_scripts(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    """A restarted Redis has no scripts loaded: the trimmer loads its script again."""
    publish(client, 10)
    client.xgroup_create(STREAM, "placer", id="0")
    client.xack(STREAM, "placer", *read(client, "placer", 10))
    trim(redis_server, STREAM)
    publish(client, 10)
    client.xack(STREAM, "placer", *read(client, "placer", 10))
    client.script_flush()

    [result] = trim(redis_server, STREAM)

    assert (result.trimmed, result.length) == (10, 1)


def test_a_redis_that_does_not_answer_costs_a_round_not_the_trimmer() -> None:
    """Each call has a timeout; a failed round is counted, and the next one comes."""
    rounds = "orders_stream_trim_rounds_total"

    async def failing_rounds(port: int) -> float:
        trimmer = StreamTrimmer(
            AsyncRedis(port=port, socket_timeout=30), [STREAM], timeout_seconds=0.2
        )
        with pytest.raises(TimeoutError):
            await trimmer.trim()
        before = registry_value(rounds, outcome="failed")

        def failed() -> float:
            return registry_value(rounds, outcome="failed") - before

        running = asyncio.create_task(trimmer.run(interval_seconds=0.01))
        while failed() < 2 and not running.done():  # noqa: ASYNC110 (a counter, no event)
            await asyncio.sleep(0.05)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await trimmer.aclose()
        return failed()

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        failed = asyncio.run(asyncio.wait_for(failing_rounds(silent.getsockname()[1]), 60))
    assert failed >= 2


# The whole stack: one API, two placers (each trims), real daprd and Redis.


@dataclass
class TrimmingStack:
    stores: Stores
    api_url: str
    placers: list[RunningApp]
    options: StackOptions
    group: ProcessGroup
    ledger: ExchangeLedger
    control_path: Path
    redis: redis.Redis

    def rounds_done(self) -> float:
        return sum(
            value(scrape(placer.metrics_url), "orders_stream_trim_rounds_total", outcome="done")
            for placer in self.placers
        )

    def wait_for_trim_rounds(self, rounds: int) -> None:
        """Until each placer could have trimmed `rounds` times from now (and together they
        did, at least that often)."""
        target = self.rounds_done() + rounds * len(self.placers)
        wait_for(lambda: self.rounds_done() >= target, what="trim rounds", timeout_seconds=60)

    def stop_deliveries(self) -> None:
        for placer in self.placers:
            placer.sidecar.stop()

    def resume_deliveries(self) -> None:
        for placer in self.placers:
            placer.sidecar = start_sidecar(self.group, self.options, placer.app_id, placer.ports)


@pytest.fixture
def trimming_stack(tmp_path: Path) -> Iterator[TrimmingStack]:
    ledger_path, control_path = tmp_path / "ledger.sqlite3", tmp_path / "exchange-control.json"
    env = {
        "EXCHANGE_LEDGER_PATH": str(ledger_path),
        "EXCHANGE_CONTROL_PATH": str(control_path),
        "EXCHANGE_LATENCY_SECONDS": "0.05",
        "EXCHANGE_FAILURE_RATE": "0",
        "ORDER_TIMEOUT_SECONDS": "2",
        "STREAM_TRIM_INTERVAL_SECONDS": "0.5",
        "LOG_LEVEL": "INFO",
    }
    with ProcessGroup(tmp_path) as group:
        stores = start_stores(group, StateStoreKind.REDIS, tmp_path / "data")
        options = local_stack_options(stores, COMPONENTS_DIR, env)
        [api], placers = start_replicas(group, options, apis=1, placers=2)
        with redis.Redis(port=stores.redis.port, socket_timeout=5, decode_responses=True) as r:
            yield TrimmingStack(
                stores, api.url, placers, options, group, ExchangeLedger(ledger_path),
                control_path, r,
            )  # fmt: skip


def post_orders(stack: TrimmingStack, count: int) -> list[str]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        responses = [client.post("/orders", json=limit_order_body()) for _ in range(count)]
    assert [r.status_code for r in responses] == [201] * count
    return [str(r.json()["id"]) for r in responses]


def wait_until_placed(stack: TrimmingStack, order_ids: list[str]) -> None:
    wait_for(
        lambda: set(order_ids) <= stack.ledger.submissions().keys(),
        what=f"{len(order_ids)} orders placed",
        timeout_seconds=180,
    )


def undelivered(client: redis.Redis, stream: str, group: str) -> list[str]:
    """The entries after the group's last-delivered-id: not read by it yet."""
    groups: Any = client.xinfo_groups(stream)
    [last] = [g["last-delivered-id"] for g in groups if g["name"] == group]
    entries: Any = client.xrange(stream, min=f"({last}")
    return [str(entry_id) for entry_id, _ in entries]


def pending(client: redis.Redis, stream: str, group: str) -> set[str]:
    entries: Any = client.xpending_range(stream, group, min="-", max="+", count=10_000)
    return {str(entry["message_id"]) for entry in entries}


def test_placers_trim_what_was_placed_and_keep_the_backlog_and_the_retries(
    trimming_stack: TrimmingStack,
) -> None:
    stack, client = trimming_stack, trimming_stack.redis
    group = stack.options.placer_app_id
    first = post_orders(stack, 50)
    wait_until_placed(stack, first)
    # Placed and acknowledged: trimmed down to the last entry the group read.
    wait_for(lambda: client.xlen(ORDERS) == 1, what="placed orders trimmed", timeout_seconds=60)

    # A backlog nobody reads while the placers' sidecars are down: kept whole.
    stack.stop_deliveries()
    backlog = post_orders(stack, BACKLOG)
    wait_for(
        lambda: len(undelivered(client, ORDERS, group)) == BACKLOG,
        what="the backlog in the orders stream",
        timeout_seconds=60,
    )
    waiting = undelivered(client, ORDERS, group)
    stack.wait_for_trim_rounds(2)
    assert undelivered(client, ORDERS, group) == waiting

    # Deliveries that fail and wait for their retries are pending: kept too.
    stack.control_path.write_text(json.dumps({"failure_rate": 1.0}))
    stack.resume_deliveries()
    wait_for(lambda: pending(client, ORDERS, group), what="pending deliveries", timeout_seconds=60)
    before = pending(client, ORDERS, group)
    stack.wait_for_trim_rounds(2)
    held = before & pending(client, ORDERS, group)  # pending all through those rounds
    assert held
    for entry_id in held:
        assert client.xrange(ORDERS, min=entry_id, max=entry_id), f"{entry_id} was trimmed"

    # The exchange is back: every order is placed, once, and the streams shrink again.
    stack.control_path.unlink()
    wait_until_placed(stack, backlog)
    # Both groups of the outbox's stream (the runtime's and the placers' release) are done too.
    wait_for(
        lambda: all(client.xlen(stream) == 1 for stream in (ORDERS, settings.OUTBOX_TOPIC)),
        what="the streams trimmed",
        timeout_seconds=60,
    )
    submissions = stack.ledger.submissions()
    assert all(submissions[order_id] == 1 for order_id in [*first, *backlog])
    # Redis can still tell each group's lag (the autoscaler and the soak test read it).
    groups: Any = client.xinfo_groups(ORDERS)
    assert [g["lag"] for g in groups] == [0]
