"""The exchange stand-in: configurable failures and a ledger that ignores repeated ids."""

from pathlib import Path

import pytest

from core.config import settings
from core.domain import Order
from placer import stock_exchange
from placer.stock_exchange import Acceptance, ExchangeLedger, OrderPlacementError
from tests.factories import accepted_order


def test_ledger_accepts_each_client_order_id_once_and_counts_repeats(tmp_path: Path) -> None:
    ledger = ExchangeLedger(tmp_path / "ledger.sqlite3")
    first, second = accepted_order(), accepted_order()
    accepted = ledger.accept(first)
    assert (accepted.client_order_id, accepted.submissions) == (first.id, 1)
    repeat = ledger.accept(first)
    # A repeat is answered with the first acceptance, counted once more.
    assert repeat == accepted.model_copy(update={"submissions": 2})
    assert ledger.accept(second).submissions == 1
    assert ledger.submissions() == {first.id: 2, second.id: 1}
    assert ledger.acceptance(first.id) == repeat
    assert ledger.acceptance(accepted_order().id) is None
    # Another process opening the same file sees the same ledger.
    assert ExchangeLedger(tmp_path / "ledger.sqlite3").submissions() == ledger.submissions()


@pytest.fixture
def exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExchangeLedger:
    ledger = ExchangeLedger(tmp_path / "ledger.sqlite3")
    monkeypatch.setattr(stock_exchange, "_ledger", ledger)
    monkeypatch.setattr(settings, "EXCHANGE_LATENCY_SECONDS", 0)
    return ledger


def test_always_failing_exchange_raises_and_records_nothing(
    exchange: ExchangeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "EXCHANGE_FAILURE_RATE", 1.0)
    with pytest.raises(OrderPlacementError):
        stock_exchange.place_order(accepted_order())
    assert exchange.submissions() == {}


def test_never_failing_exchange_records_every_order(
    exchange: ExchangeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "EXCHANGE_FAILURE_RATE", 0.0)
    orders = [accepted_order() for _ in range(20)]
    for order in orders:
        stock_exchange.place_order(order)
    assert exchange.submissions() == {order.id: 1 for order in orders}


class CountingLedger:
    """Counts accepted orders in memory: the test draws failures, it does not check the ledger."""

    def __init__(self) -> None:
        self.accepted = 0

    def accept(self, order: Order) -> Acceptance:
        self.accepted += 1
        return Acceptance(
            client_order_id=order.id, instrument=order.instrument, accepted_at=0, submissions=1
        )


def test_default_failure_rate_fails_about_one_call_in_ten(
    exchange: ExchangeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingLedger()
    monkeypatch.setattr(stock_exchange, "_ledger", counting)
    monkeypatch.setattr(settings, "EXCHANGE_FAILURE_RATE", 0.1)
    failures = 0
    for _ in range(2000):
        try:
            stock_exchange.place_order(accepted_order())
        except OrderPlacementError:
            failures += 1
    assert 100 < failures < 320  # 200 expected; the bounds are > 7 standard deviations away
    assert counting.accepted == 2000 - failures


def test_control_file_overrides_the_settings_on_every_call(
    exchange: ExchangeLedger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    control = tmp_path / "control.json"
    monkeypatch.setattr(settings, "EXCHANGE_CONTROL_PATH", control)
    monkeypatch.setattr(settings, "EXCHANGE_FAILURE_RATE", 0.0)
    control.write_text('{"failure_rate": 1.0}')
    with pytest.raises(OrderPlacementError):
        stock_exchange.place_order(accepted_order())
    control.unlink()
    order = accepted_order()
    stock_exchange.place_order(order)
    assert exchange.submissions() == {order.id: 1}
