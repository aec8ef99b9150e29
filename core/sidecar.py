"""A small async client for the Dapr sidecar's HTTP API.

One instance per process, opened at start-up: it keeps its connections to the sidecar alive
(core/http1.py). Every call has a total deadline (the client's, or a shorter one per call), so a
hung sidecar or store turns into `SidecarError` in time.
"""

import asyncio
import json
from http import HTTPStatus
from typing import Any, Protocol

from core.config import settings
from core.http1 import Http1Client, Response
from core.tracing import inject_into


class SidecarError(Exception):
    """The sidecar, or a component behind it, did not do what was asked."""


class EtagMismatchError(SidecarError):
    """A conditional write lost against a concurrent one."""


class StateApi(Protocol):
    """The sidecar's state API (and its publishing), as the repository, the outbox release and
    the re-drive use it: DaprSidecar below, or an in-memory fake in the unit tests."""

    async def get_state(
        self, store: str, key: str, *, timeout_seconds: float | None = None
    ) -> tuple[bytes | None, str | None]: ...

    async def get_bulk_state(self, store: str, keys: list[str]) -> dict[str, Any]: ...

    async def save_state(
        self,
        store: str,
        key: str,
        value: Any,
        *,
        etag: str | None = None,
        first_write: bool = False,
        ttl_seconds: int | None = None,
        timeout_seconds: float | None = None,
    ) -> None: ...

    async def save_states(
        self, store: str, values: dict[str, Any], *, first_write: bool = False
    ) -> None: ...

    async def save_in_transaction(
        self, store: str, values: dict[str, Any], *, ttl_seconds: int
    ) -> None: ...

    async def execute_transaction(
        self, store: str, operations: list[dict[str, Any]], *, timeout_seconds: float | None = None
    ) -> None: ...

    async def delete_state(self, store: str, key: str) -> None: ...

    async def publish(self, pubsub: str, topic: str, data: Any) -> None: ...


# Calls in flight at once. All their connections stay open: a burst (the backlog after a store
# outage) reuses them instead of connecting anew for each call.
MAX_CALLS_IN_FLIGHT = 200


class DaprSidecar:
    def __init__(self, endpoint: str, *, api_token: str | None, timeout_seconds: float) -> None:
        headers = {"dapr-api-token": api_token} if api_token else {}
        self._http = Http1Client(endpoint, headers=headers, max_connections=MAX_CALLS_IN_FLIGHT)
        self._timeout_seconds = timeout_seconds

    @classmethod
    def of_this_app(cls, endpoint: str | None = None) -> "DaprSidecar":
        """The client of this process's own sidecar, as the settings describe it."""
        return cls(
            endpoint or settings.DAPR_HTTP_ENDPOINT,
            api_token=settings.DAPR_API_TOKEN,
            timeout_seconds=settings.ORDER_TIMEOUT_SECONDS,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def is_ready(self, timeout_seconds: float) -> bool:
        try:
            response = await self._send("GET", "/v1.0/healthz", timeout_seconds=timeout_seconds)
        except SidecarError:
            return False
        return response.status == HTTPStatus.NO_CONTENT

    async def execute_transaction(
        self, store: str, operations: list[dict[str, Any]], *, timeout_seconds: float | None = None
    ) -> None:
        """Runs a state transaction; on a store with an outbox this also publishes each upsert."""
        path = f"/v1.0/state/{store}/transaction"
        body = {"operations": operations}
        await self._call("POST", path, json=body, timeout_seconds=timeout_seconds)

    async def get_state(
        self, store: str, key: str, *, timeout_seconds: float | None = None
    ) -> tuple[bytes | None, str | None]:
        """Returns the stored value and its etag, or (None, None) for a missing key."""
        path = f"/v1.0/state/{store}/{key}"
        response = await self._call("GET", path, timeout_seconds=timeout_seconds)
        if response.status == HTTPStatus.NO_CONTENT or not response.body:
            return None, None
        return response.body, response.etag

    async def get_bulk_state(self, store: str, keys: list[str]) -> dict[str, Any]:
        """The values of several keys in one call, parsed from JSON; missing keys are left out.
        The sidecar answers 200 even when reading a key failed: that key carries an `error`,
        and must not pass for a missing one."""
        body = {"keys": keys, "parallelism": len(keys)}
        response = await self._call("POST", f"/v1.0/state/{store}/bulk", json=body)
        items = response.json()
        failed = {item["key"]: item["error"] for item in items if item.get("error")}
        if failed:
            raise SidecarError(f"bulk get from {store}: {failed}")
        return {item["key"]: item["data"] for item in items if "data" in item}

    async def save_state(
        self,
        store: str,
        key: str,
        value: Any,
        *,
        etag: str | None = None,
        first_write: bool = False,
        ttl_seconds: int | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        """Saves one key (outside any outbox). With `first_write`, a missing etag means
        "only if absent" and a stale one raises `EtagMismatchError`; with `ttl_seconds` the
        store expires the key."""
        item = _state_item(key, value, etag=etag, first_write=first_write, ttl_seconds=ttl_seconds)
        path = f"/v1.0/state/{store}"
        await self._call("POST", path, json=[item], timeout_seconds=timeout_seconds)

    async def save_states(
        self,
        store: str,
        values: dict[str, Any],
        *,
        first_write: bool = False,
    ) -> None:
        """Saves several keys in one call, each on its own: when some fail (a lost first
        write, say) the others are saved and this raises."""
        items = [_state_item(k, v, first_write=first_write) for k, v in values.items()]
        await self._call("POST", f"/v1.0/state/{store}", json=items)

    async def save_in_transaction(
        self, store: str, values: dict[str, Any], *, ttl_seconds: int
    ) -> None:
        """Saves several keys, expiring, in one state transaction (on a store without an
        outbox: nothing is published)."""
        operations = [
            {"operation": "upsert", "request": _state_item(k, v, ttl_seconds=ttl_seconds)}
            for k, v in values.items()
        ]
        await self.execute_transaction(store, operations)

    async def delete_state(self, store: str, key: str) -> None:
        await self._call("DELETE", f"/v1.0/state/{store}/{key}")

    async def publish(self, pubsub: str, topic: str, data: Any) -> None:
        await self._call("POST", f"/v1.0/publish/{pubsub}/{topic}", json=data)

    async def _call(
        self, method: str, path: str, *, timeout_seconds: float | None = None, json: Any = None
    ) -> Response:
        response = await self._send(method, path, timeout_seconds=timeout_seconds, json=json)
        if response.status == HTTPStatus.CONFLICT:
            raise EtagMismatchError(f"{method} {path}: {response.text}")
        if response.status >= HTTPStatus.BAD_REQUEST:
            raise SidecarError(f"{method} {path}: HTTP {response.status}: {response.text}")
        return response

    async def _send(
        self, method: str, path: str, *, timeout_seconds: float | None = None, json: Any = None
    ) -> Response:
        deadline = timeout_seconds or self._timeout_seconds
        # The sidecar continues the caller's trace: the outbox hands it on to the placer.
        trace_headers: dict[str, str] = {}
        inject_into(trace_headers)
        body = None if json is None else _json(json)
        try:
            async with asyncio.timeout(deadline):
                return await self._http.request(method, path, body=body, headers=trace_headers)
        except TimeoutError as error:
            raise SidecarError(f"{method} {path}: no answer in {deadline} s") from error
        except OSError as error:
            raise SidecarError(f"{method} {path}: {error!r}") from error


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _state_item(
    key: str,
    value: Any,
    *,
    etag: str | None = None,
    first_write: bool = False,
    ttl_seconds: int | None = None,
) -> dict[str, Any]:
    """One key to save, in the shape of Dapr's state API (a save or a transaction's upsert)."""
    item: dict[str, Any] = {"key": key, "value": value}
    if first_write:
        item["options"] = {"concurrency": "first-write"}
    if ttl_seconds is not None:
        item["metadata"] = {"ttlInSeconds": str(ttl_seconds)}
    if etag is not None:
        item["etag"] = etag
    return item
