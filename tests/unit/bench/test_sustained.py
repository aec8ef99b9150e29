"""The sustained-capacity logic: the backlog over time, the verdict "flat", the rate search."""

import pytest

from bench import sustained
from bench.sustained import Criteria, FixedRates, RateSearch

CRITERIA = Criteria(max_p99_ms=3000, backlog_seconds=5, growth_seconds=1, slack_orders=20)


def test_backlog_is_accepted_less_placed_less_dead_lettered_at_each_second() -> None:
    accepted = [100.2, 100.5, 101.1, 101.2, 102.9]
    placed = [101.5, 102.4]
    dead = [(101.0, 0), (102.0, 1)]  # sampled counts: the last sample by then holds
    series = sustained.backlog_series(100.0, 3, accepted, placed, dead)
    assert series == [0, 2, 4 - 1 - 1, 5 - 2 - 1]


def test_growth_is_the_slope_over_the_second_half() -> None:
    assert sustained.growth([50] * 60) == pytest.approx(0)
    # Noise early on does not count; 2 orders a second over the last 30 seconds does.
    climbing = [0, 90, 5, 80] + [10] * 26 + [10 + 2 * s for s in range(30)]
    assert sustained.growth(climbing) == pytest.approx(58, abs=1)
    assert sustained.growth([7]) == 0


def test_a_flat_backlog_with_a_low_p99_is_sustained() -> None:
    series = [0, 150] + [148, 152, 150, 149, 151] * 12  # rate 100/s, 1.5 s of arrivals
    verdict = sustained.judge(100, series, 2500, sent=6000, accepted=6000, criteria=CRITERIA)
    assert verdict.sustained and verdict.flat and verdict.reasons == []


def test_a_growing_backlog_is_not_sustained() -> None:
    series = [150 + 5 * s for s in range(61)]  # 5 orders a second more than are placed
    verdict = sustained.judge(100, series, 2500, sent=6000, accepted=6000, criteria=CRITERIA)
    assert not verdict.sustained and not verdict.flat
    assert any("grew by 150" in reason for reason in verdict.reasons), verdict.reasons


def test_a_deep_backlog_at_the_end_is_not_sustained_even_when_flat_lately() -> None:
    series = [0] * 30 + [900] * 31  # a step: over 5 s of arrivals (500 + 20) at the end
    verdict = sustained.judge(100, series, 2500, sent=6000, accepted=6000, criteria=CRITERIA)
    assert verdict.reasons == ["backlog: 900 at the end, over 520"]


def test_a_high_p99_fails_a_flat_backlog() -> None:
    verdict = sustained.judge(10, [15] * 61, 3800, sent=600, accepted=600, criteria=CRITERIA)
    assert verdict.flat and not verdict.sustained
    assert verdict.reasons == ["latency: accept→placed p99 3800 ms, over 3000"]


def test_orders_the_api_did_not_take_fail_the_rate() -> None:
    verdict = sustained.judge(100, [150] * 61, 2000, sent=6000, accepted=5000, criteria=CRITERIA)
    assert not verdict.flat and verdict.reasons == ["intake: 5000 of 6000 orders answered 201"]


def test_a_point_stopped_early_is_not_sustained() -> None:
    verdict = sustained.judge(
        100, [150] * 11, 2000, sent=1100, accepted=1100, criteria=CRITERIA, stopped_early=True
    )
    assert not verdict.sustained


def test_orders_never_placed_count_with_their_wait_so_far() -> None:
    created = {f"o{i}": 100.0 for i in range(100)}
    placed = {f"o{i}": 101.0 for i in range(98)}  # two are not placed by 110 s
    p50, p99, unplaced = sustained.accept_to_placed_ms(created, placed, settled_at=110.0)
    assert (p50, p99, unplaced) == (1000.0, 10_000.0, 2)


def search_until(plan: RateSearch, capacity: int) -> list[int]:
    """The rates tried against a service that sustains exactly `capacity` orders a second."""
    tried = []
    while (rate := plan.next_rate()) is not None:
        tried.append(rate)
        plan.record(rate, rate <= capacity)
    return tried


@pytest.mark.parametrize("capacity", [10, 18, 57, 300, 999])
def test_search_ends_within_the_precision_below_the_capacity(capacity: int) -> None:
    plan = RateSearch(40, min_rate=5, max_rate=1000, max_points=12, precision=0.1)
    tried = search_until(plan, capacity)
    assert plan.best is not None and plan.best <= capacity
    failed_above = min((r for r in tried if r > capacity), default=None)
    assert failed_above is None or failed_above <= plan.best * 1.1 or failed_above - plan.best <= 1
    assert len(tried) == len(set(tried)) <= 12


def test_search_climbs_to_the_highest_rate_and_stops_there() -> None:
    plan = RateSearch(300, min_rate=5, max_rate=1000, max_points=10)
    assert search_until(plan, 5000) == [300, 600, 1000]
    assert plan.best == 1000


def test_search_descends_to_the_lowest_rate_when_nothing_is_sustained() -> None:
    plan = RateSearch(40, min_rate=5, max_rate=1000, max_points=10)
    assert search_until(plan, 0) == [40, 20, 10, 5]
    assert plan.best is None


def test_search_tries_no_more_than_its_points() -> None:
    plan = RateSearch(10, min_rate=1, max_rate=1000, max_points=3, precision=0.01)
    assert len(search_until(plan, 123)) == 3


def test_given_rates_are_each_tried_once_lowest_first() -> None:
    plan = FixedRates([200, 50, 100, 50])
    assert search_until(plan, 120) == [50, 100, 200]
    assert plan.best == 100


def test_the_headline_is_the_highest_sustained_rate() -> None:
    def point(rate: int) -> dict[str, object]:
        ok = rate <= 30
        return {"rate_per_s": rate, "sustained": ok, "flat": rate <= 40, "reasons": [],
                "backlog": [1, 2], "backlog_every_s": 1}  # fmt: skip

    found = sustained.search(FixedRates([20, 30, 40, 50]), point)
    assert found["rate_per_s"] == found["capacity_per_s"] == 30
    assert found["highest_flat_rate_per_s"] == 40
    assert [p["rate_per_s"] for p in found["tried"]] == [20, 30, 40, 50]
    assert "backlog" not in found and "backlog" in found["tried"][0]


def test_placer_metrics_are_summed_over_their_labels() -> None:
    text = (
        "# HELP orders_placed_total Orders the exchange accepted\n"
        "orders_placed_total 41.0\n"
        "orders_placed_created 1.7e9\n"
        'orders_placement_attempts_total{outcome="placed"} 41.0\n'
        'orders_placement_attempts_total{outcome="exchange_failed"} 5.0\n'
    )
    assert sustained.metric_total(text, "orders_placed_total") == 41
    assert sustained.metric_total(text, "orders_placement_attempts_total") == 46
    assert sustained.metric_total(text, "orders_dead_lettered_total") is None
