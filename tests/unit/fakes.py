"""An in-memory stand-in for OrderRepository, for unit tests of pure logic."""

from core.domain import Decision, Order
from core.sidecar import SidecarError


class MemoryOrders:
    def __init__(self) -> None:
        self.saved: dict[str, Order] = {}
        self.keys: dict[str, Order] = {}
        self.decisions: dict[str, Decision] = {}
        self.creates = 0
        self.failure: Exception | None = None  # every call raises it
        self.create_failure: SidecarError | None = None  # only create raises it

    async def create(self, order: Order, timeout_seconds: float | None = None) -> None:
        self.creates += 1
        if self.failure:
            raise self.failure
        if self.create_failure:
            raise self.create_failure
        self.saved[order.id] = order

    async def get(self, order_id: str, timeout_seconds: float | None = None) -> Order | None:
        if self.failure:
            raise self.failure
        return self.saved.get(order_id)

    @property
    def voided(self) -> set[str]:
        return {i for i, decision in self.decisions.items() if decision is Decision.VOID}

    async def decide(
        self, order_id: str, decision: Decision, timeout_seconds: float | None = None
    ) -> Decision:
        if self.failure:
            raise self.failure
        return self.decisions.setdefault(order_id, decision)

    async def lift_void(self, order_id: str) -> None:
        if self.decisions.get(order_id) is Decision.VOID:
            del self.decisions[order_id]

    async def reserve_idempotency_key(self, key: str, order: Order, retention: int) -> Order:
        return self.keys.setdefault(key, order)
