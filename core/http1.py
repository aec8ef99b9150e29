"""HTTP/1.1 to one server over kept-alive connections: the transport of the apps' client of
their sidecar (core/sidecar.py).

On asyncio and httptools (the C parser uvicorn uses), not aiohttp: at the rate the service
sustains, aiohttp's machinery for each request (URL and header objects, cookie and tracing
hooks, its connector) took about a fifth of the placer's CPU and a sixth of the API's
([decision 0020](../docs/decisions/0020-own-http-client-for-the-sidecar.md)). The sidecar is one
known server beside the app, so this client does only what that needs: plain `http`, one host,
answers read whole, one request at a time per connection.
"""

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlsplit

import httptools


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    etag: str | None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class _Connection(asyncio.Protocol):
    """One connection to the server, carrying one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Response] | None = None
        self._body: list[bytes] = []
        self._etag: str | None = None
        self.is_open = True

    async def exchange(self, request: bytes) -> Response:
        """Sends the request and waits for its whole answer."""
        if self._transport is None or not self.is_open:
            raise ConnectionError("the connection is closed")
        self._body, self._etag = [], None
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._answer

    def close(self) -> None:
        self.is_open = False
        if self._transport is not None:
            self._transport.close()

    # asyncio's callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio's, so no isinstance).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"not an HTTP answer: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        self._fail(ConnectionError(f"the server closed the connection: {exc!r}"))

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"etag":
            self._etag = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer, self._answer = self._answer, None
        if not self._parser.should_keep_alive():
            self.close()
        if answer is None or answer.done():
            self.close()  # an answer nobody asked for: the connection is out of step
            return
        status = self._parser.get_status_code()
        answer.set_result(Response(status, b"".join(self._body), self._etag))

    def _fail(self, error: ConnectionError) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)


class Http1Client:
    """Requests to the server at `base_url` (plain http), each with `headers`, at most
    `max_connections` at once; connections stay open for the next request."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], max_connections: int) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"{base_url}: only plain http://host[:port] is supported")
        self._host, self._port = url.hostname, url.port or 80
        self._headers = _header_lines({"Host": url.netloc, **headers})
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The server's answer to a request for `path` (no query), whatever its status; `body`
        is JSON. Raises OSError when the connection fails or the answer is not HTTP; a call
        cancelled (a timeout) closes its connection."""
        content = b"" if body is None else b"Content-Type: application/json\r\n"
        if body is not None:
            content += b"Content-Length: %d\r\n" % len(body)
        request = b"".join(
            (
                f"{method} {quote(path)} HTTP/1.1\r\n".encode(),
                self._headers,
                _header_lines(headers or {}),
                content,
                b"\r\n",
                body or b"",
            )
        )
        async with self._slots:
            connection = self._idle_connection() or await self._connect()
            try:
                response = await connection.exchange(request)
            except BaseException:
                connection.close()  # its answer, if one comes, belongs to no one
                raise
            if connection.is_open and not self._closed:
                self._idle.append(connection)
            return response

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_open:  # else the server closed it meanwhile
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self._host, self._port)
        return connection

    async def aclose(self) -> None:
        """Closes the idle connections; those in use close when their answer comes."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _header_lines(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"header {name!r}: line breaks are not allowed")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")
