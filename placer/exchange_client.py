"""The placer's client of the shared exchange stand-in (`python -m exchange`), used instead of
the in-process one when EXCHANGE_URL is set: every placer pod then places on one ledger, so a
client order id repeated by another pod is still recognised.

One aiohttp session per process, opened by the first call and closed at shutdown: the stand-in
is a service found by name, not the sidecar beside the app (core/http1.py). Every call has a
total deadline (EXCHANGE_TIMEOUT_SECONDS): a call that runs past it is a failed one, retried by
the sidecar like any other. Its answer may have been lost after the stand-in accepted the order;
the retry carries the same client order id, and the stand-in answers it with the first
acceptance instead of placing the order again.
"""

from http import HTTPStatus

import aiohttp
import anyio.from_thread

from core.domain import Order
from core.tracing import inject_into
from placer.stock_exchange import OrderPlacementError, OrderRefusedError

ACCEPTED = {HTTPStatus.CREATED, HTTPStatus.OK}  # first acceptance, or a repeat of one
# Client errors that say nothing against this order: the exchange is slow or busy.
NOT_A_REFUSAL = {HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS}
# In the message of a call that got no answer in time: the stand-in may still have accepted it,
# so the order's next call is a repeat (tests tell these repeats from unexplained ones).
NO_ANSWER = "did not answer"


class ExchangeClient:
    def __init__(self, url: str, *, timeout_seconds: float, max_connections: int) -> None:
        self._orders_url = f"{url.rstrip('/')}/orders"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # opened by the first call

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def submit(self, order: Order) -> None:
        """Places `order`, with its id as the client order id; raises OrderRefusedError when the
        stand-in refuses it (a client error), OrderPlacementError when it fails (a server
        error, 408 or 429) or does not answer in time."""
        if self._session is None:
            # Kept-alive connections, as many as the placer makes calls at once.
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        body = order.model_dump(mode="json")
        headers: dict[str, str] = {}
        inject_into(headers)  # the call is a span of the delivery's trace
        try:
            async with self._session.post(self._orders_url, json=body, headers=headers) as response:
                answer = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            message = f"the exchange stand-in {NO_ANSWER} for order {order.id}: {error!r}"
            raise OrderPlacementError(message) from error
        if response.status in ACCEPTED:
            return
        message = f"the exchange stand-in answered {response.status} for order {order.id}"
        if 400 <= response.status < 500 and response.status not in NOT_A_REFUSAL:
            raise OrderRefusedError(f"{message}: {answer[:200]}")
        raise OrderPlacementError(f"{message}: {answer[:200]}")

    def place_order(self, order: Order) -> None:
        """The placer's exchange call, made as the in-process one is: from one of its worker
        threads. The request itself runs on the event loop, on the shared session."""
        anyio.from_thread.run(self.submit, order)
