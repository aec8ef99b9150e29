"""The two systems the service is measured against, as ASGI apps on the same body and model:

- `floor`: validates the order and writes it and its event to Redis in one MULTI, no sidecar:
  the cost of Python, HTTP and one store write on this machine.
- `naive`: the same, after calling the exchange inline, as a queue-less design would: its
  speed is the exchange's (0.5 s a call, 10% failures).

Run with uvicorn, e.g. `uvicorn bench.peers:floor --workers 2`; BENCH_REDIS_URL says where
Redis is.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from bench.config import bench_settings
from core.domain import Order, OrderEvent, OrderEventKind, OrderRequest
from placer.stock_exchange import OrderPlacementError, place_order


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = Redis.from_url(bench_settings.REDIS_URL, socket_timeout=3)
    yield
    await app.state.redis.aclose()


async def store(redis: Redis, order: Order) -> None:
    """The order and its "accepted" event, atomically."""
    event = OrderEvent(kind=OrderEventKind.ACCEPTED, at=order.created_at)
    async with redis.pipeline(transaction=True) as transaction:
        transaction.set(f"order-{order.id}", order.model_dump_json())
        transaction.xadd("orders", {"data": json.dumps(event.model_dump(mode="json"))})
        await transaction.execute()


floor = FastAPI(title="Benchmark floor", lifespan=lifespan)
naive = FastAPI(title="Benchmark naive peer", lifespan=lifespan)


@floor.post("/orders", status_code=status.HTTP_201_CREATED)
async def create_order_floor(body: OrderRequest, request: Request) -> Order:
    order = Order.accept(body)
    await store(request.app.state.redis, order)
    return order


@naive.post("/orders", status_code=status.HTTP_201_CREATED, response_model=Order)
async def create_order_naive(body: OrderRequest, request: Request) -> Order | JSONResponse:
    order = Order.accept(body)
    try:
        await anyio.to_thread.run_sync(place_order, order)
    except OrderPlacementError:
        return JSONResponse(
            {"message": "Internal server error while placing the order"},
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    await store(request.app.state.redis, order)
    return order
