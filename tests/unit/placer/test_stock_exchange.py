"""The exchange stand-in: configurable failures and a ledger that ignores repeated ids."""

from pathlib import Path

import pytest

from core.config import settings
from core.domain import Order
from placer import stock_exchange
from placer.stock_exchange import ExchangeLedger, OrderPlacementError
from tests.factories import accepted_order


def test_ledger_accepts_each_client_order_id_once_and_counts_repeats(tmp_path: Path) -> None:
    ledger = ExchangeLedger(tmp_path / "ledger.sqlite3")
    first, second = accepted_order(), accepted_order()
    assert ledger.accept(first) is True
    assert ledger.accept(first) is False
    assert ledger.accept(second) is True
    assert ledger.submissions() == {first.id: 2, second.id: 1}
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
    """Counts accepted orders in memory: 2,000 writes to the SQLite ledger take half a minute."""

    def __init__(self) -> None:
        self.accepted = 0

    def accept(self, order: Order) -> bool:
        self.accepted += 1
        return True


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
