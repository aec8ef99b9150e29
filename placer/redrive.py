"""Re-drives dead-lettered orders: `python -m placer.redrive` (or `./run redrive`).

Each order listed as dead-lettered is set back to `accepted` and published to the orders topic
again, through the placer's sidecar; the placer then places it as any other order (and skips it
if it was placed meanwhile).
"""

import asyncio
import logging

from core.config import settings
from core.domain import OrderEvent, OrderEventKind, OrderStatus
from core.logs import configure_logging
from core.repository import OrderRepository
from core.sidecar import DaprSidecar, StateApi

logger = logging.getLogger("placer.redrive")


async def redrive(sidecar: StateApi, orders: OrderRepository) -> int:
    """Re-publishes every dead-lettered order; returns how many."""
    redriven = 0
    for order_id in await orders.dead_lettered_ids():
        order = await orders.get(order_id)
        if order is not None and order.status is OrderStatus.FAILED:
            accepted = order.model_copy(
                update={"status": OrderStatus.ACCEPTED, "failure_reason": None}
            )
            await orders.save(accepted)
            await orders.record_event(order_id, OrderEvent(kind=OrderEventKind.REDRIVEN))
            await sidecar.publish(
                settings.PUBSUB, settings.ORDERS_TOPIC, accepted.model_dump(mode="json")
            )
            redriven += 1
            logger.info("order %s: re-driven", order_id)
        # Only once published: a crash before this line re-drives the order again, harmlessly.
        await orders.remove_dead_lettered(order_id)
    return redriven


async def main(dapr_endpoint: str = settings.DAPR_HTTP_ENDPOINT) -> None:
    configure_logging(settings.LOG_LEVEL)
    sidecar = DaprSidecar.of_this_app(dapr_endpoint)
    try:
        count = await redrive(sidecar, OrderRepository(sidecar, settings.PLACER_STATE_STORE))
    finally:
        await sidecar.aclose()
    logger.info("%d dead-lettered order(s) re-driven", count)


if __name__ == "__main__":
    asyncio.run(main())
