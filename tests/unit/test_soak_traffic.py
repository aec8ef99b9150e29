"""The soak test's reading of vegeta's results: each answer under the order it answers."""

import json

import pytest

from bench.vegeta import Hit
from tests.faults.harness import PLACEMENT_FAILED
from tests.soak import test_soak
from tests.soak.test_soak import traffic_of


def hit(quantity: int, sent_at: float, code: int, body: bytes = b"") -> Hit:
    return Hit(sent_at, 12.5, code, "", body, url=f"http://127.0.0.1:8001/orders#{quantity}")


def test_each_answer_is_filed_under_the_quantity_in_its_url() -> None:
    created = json.dumps({"id": "o2", "quantity": 2}).encode()
    hits = [
        hit(1, 100.0, 0),
        hit(2, 100.5, 201, created),
        hit(3, 101.0, 500, json.dumps(PLACEMENT_FAILED).encode()),
        hit(4, 102.0, 502, b"Bad Gateway"),
    ]
    sent = traffic_of(hits)
    assert sent.answers[1].status is None and sent.answers[1].body is None
    assert sent.answers[2].status == 201 and sent.answers[2].body["id"] == "o2"
    assert sent.answers[2].seconds == pytest.approx(0.0125)
    assert sent.answers[3].body == PLACEMENT_FAILED
    assert sent.answers[4].body == "Bad Gateway"
    assert sent.sending_seconds == pytest.approx(2.0)


def test_the_rate_held_counts_the_orders_sent_over_the_longer_of_the_run_and_the_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(test_soak, "SECONDS", 10.0)
    on_time = traffic_of([hit(n + 1, n * 0.01, 201) for n in range(1000)])
    assert on_time.held_rate() == pytest.approx(100.0)  # sent in 9.99 s of a 10 s run
    late = traffic_of([hit(n + 1, n * 0.02, 201) for n in range(1000)])
    assert late.held_rate() == pytest.approx(1000 / 19.98)
