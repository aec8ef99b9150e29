"""The benchmark's open-loop points on real systems: a sustained rate on the service as `./run`
starts it (with the exchange stand-in's latency and failures), and a fixed rate on the floor."""

from pathlib import Path

from bench import open_loop, sustained, systems
from bench.sustained import Criteria

RATE, SECONDS = 5, 8
SERVICE_ROLES = {"api", "daprd order-api", "daprd order-placer", "placer", "redis"}
# No latency bound worth the name: these tests check the accounting, not the machine's speed.
LENIENT = Criteria(max_p99_ms=60_000)


def test_a_rate_the_placer_keeps_up_with_is_sustained_and_every_order_placed(
    tmp_path: Path,
) -> None:
    exchange = {"EXCHANGE_LATENCY_SECONDS": "0.5", "EXCHANGE_FAILURE_RATE": "0.1"}
    point = sustained.measure(tmp_path, RATE, SECONDS, exchange, LENIENT)
    assert point["sent"] == RATE * SECONDS
    assert point["accepted_per_s"] * point["seconds"] >= point["sent"] - 1  # every order 201
    assert point["not_placed_at_end"] == 0 and point["dead_lettered"] == 0
    assert point["sustained"], point["reasons"]
    assert 0 < point["accept_to_placed_ms"]["p50"] <= point["accept_to_placed_ms"]["p99"]
    spent = point["cpu_ms_per_placed_order"]
    assert spent.keys() >= SERVICE_ROLES and spent["total"] > 0 and spent["vegeta"] > 0
    assert spent["total"] >= sum(spent[role] for role in SERVICE_ROLES) - 0.01
    assert point["cpu_bound_per_s"] > 0 and point["backlog"][0] == 0


def test_a_rate_beyond_the_placer_builds_a_backlog_and_is_not_sustained(tmp_path: Path) -> None:
    # A 5 s exchange: one placer places about 2 orders a second, far below 20.
    exchange = {"EXCHANGE_LATENCY_SECONDS": "5", "EXCHANGE_FAILURE_RATE": "0"}
    # The default latency bound: the wait for placements after the load stays short.
    point = sustained.measure(tmp_path, 20, SECONDS, exchange, Criteria())
    assert not point["sustained"] and not point["flat"]
    assert any(reason.startswith("backlog") for reason in point["reasons"]), point["reasons"]
    assert point["backlog_end"] > point["backlog_start"] > 0
    assert point["placed_per_s"] < point["accepted_per_s"]


def test_open_loop_point_sends_its_rate_and_reads_every_answer(tmp_path: Path) -> None:
    with systems.peer(tmp_path, "floor") as url:
        point = open_loop.point(
            "floor",
            url,
            capacity_per_s=100,
            capacity_basis=open_loop.CLOSED_LOOP_PEAK,
            fraction=0.5,
            seconds=4,
            workdir=tmp_path / "vegeta",
        )
    assert point["rate_per_s"] == 50 and point["requests"] == 200
    assert point["errors"] == 0
    assert 0 < point["p50_ms"] <= point["p99_ms"] <= point["p999_ms"]
    assert point["vegeta_cpu_ms_per_request"] > 0
