"""The sidecar client's transport against a plain asyncio server on loopback: what it sends,
and how it keeps, drops and replaces its connections."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from core.http1 import Http1Client

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both event loops: the apps run on uvloop (uvicorn's), whose transports differ."""
    return "asyncio", {"use_uvloop": request.param}


# Far above what any request here takes: a client that waits for ever fails the test.
TEST_BOUND_SECONDS = 10

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: 7\r\n\r\n{}"

Answer = Callable[[bytes], bytes | None]  # the raw request -> raw answer; None: no answer


@dataclass
class Server:
    """Records each request with the connection it came on, and answers it with `answer`."""

    answer: Answer = lambda request: OK
    close_after_answer: bool = False
    requests: list[tuple[int, bytes]] = field(default_factory=list)
    connections: int = 0
    open_connections: int = 0
    most_open_at_once: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self.most_open_at_once = max(self.most_open_at_once, self.open_connections)
        connection, self.writers = self.connections, [*self.writers, writer]
        try:
            while request := await read_request(reader):
                self.requests.append((connection, request))
                if (answer := self.answer(request)) is not None:
                    writer.write(answer)
                    await writer.drain()
                if self.close_after_answer:
                    break
        finally:
            self.open_connections -= 1
            writer.close()

    def close_idle_connections(self) -> None:
        for writer in self.writers:
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        return head + await reader.readexactly(length)
    return b""


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, Http1Client]]:
    server = Server()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    client = Http1Client(
        f"http://127.0.0.1:{port}", headers={"dapr-api-token": "t"}, max_connections=4
    )
    async with asyncio.timeout(TEST_BOUND_SECONDS):
        yield server, client
    await client.aclose()
    server.close_idle_connections()
    listening.close()


async def test_a_request_carries_its_headers_and_body_and_gets_the_whole_answer(
    served: tuple[Server, Http1Client],
) -> None:
    server, client = served
    response = await client.request(
        "POST", "/v1.0/state/store", body=b'[{"key":"a"}]', headers={"traceparent": "00-ab"}
    )
    assert (response.status, response.body, response.etag) == (200, b"{}", "7")
    [(_, request)] = server.requests
    head, body = request.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1.0/state/store HTTP/1.1"
    assert {b"dapr-api-token: t", b"traceparent: 00-ab", b"Content-Length: 13"} <= set(lines)
    assert body == b'[{"key":"a"}]'


async def test_a_path_is_sent_quoted(served: tuple[Server, Http1Client]) -> None:
    server, client = served
    await client.request("GET", "/v1.0/state/store/a key")
    assert server.requests[0][1].startswith(b"GET /v1.0/state/store/a%20key HTTP/1.1\r\n")


async def test_a_header_with_a_line_break_is_refused(served: tuple[Server, Http1Client]) -> None:
    server, client = served
    with pytest.raises(ValueError, match="line breaks"):
        await client.request("GET", "/", headers={"traceparent": "x\r\nEvil: 1"})
    assert server.requests == []


async def test_requests_in_turn_share_one_connection(served: tuple[Server, Http1Client]) -> None:
    server, client = served
    for _ in range(3):
        assert (await client.request("GET", "/")).status == 200
    assert [connection for connection, _ in server.requests] == [1, 1, 1]


async def test_a_connection_the_server_closes_is_replaced(
    served: tuple[Server, Http1Client],
) -> None:
    server, client = served
    server.close_after_answer = True
    server.answer = lambda request: (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    for _ in range(3):
        assert (await client.request("GET", "/")).status == 200
    assert server.connections == 3


async def test_an_idle_connection_closed_by_the_server_is_not_used_again(
    served: tuple[Server, Http1Client],
) -> None:
    server, client = served
    await client.request("GET", "/")
    server.close_idle_connections()
    await asyncio.sleep(0.1)  # the client's event loop sees the close
    assert (await client.request("GET", "/")).status == 200
    assert server.connections == 2


async def test_an_answer_that_never_comes_leaves_no_connection_out_of_step(
    served: tuple[Server, Http1Client],
) -> None:
    server, client = served
    late = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate"
    server.answer = lambda request: None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.request("GET", "/first")
    server.answer = lambda request: late if b"/first" in request else OK
    # The timed-out request's connection is closed, so no late answer can reach this one.
    assert (await client.request("GET", "/second")).body == b"{}"
    assert [connection for connection, _ in server.requests] == [1, 2]


async def test_answers_without_a_body_or_in_chunks_are_read_whole(
    served: tuple[Server, Http1Client],
) -> None:
    server, client = served
    server.answer = lambda request: b"HTTP/1.1 204 No Content\r\n\r\n"
    assert (await client.request("DELETE", "/k")).body == b""
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    server.answer = lambda request: chunked
    assert (await client.request("GET", "/k")).body == b"abcde"
    assert server.connections == 1


async def test_an_answer_that_is_not_http_is_a_connection_error(
    served: tuple[Server, Http1Client],
) -> None:
    server, client = served
    server.answer = lambda request: b"SSH-2.0-OpenSSH\r\n\r\n"
    with pytest.raises(ConnectionError, match="not an HTTP answer"):
        await client.request("GET", "/")


async def test_no_more_connections_than_allowed_are_open_at_once(
    served: tuple[Server, Http1Client],
) -> None:
    server, client = served
    answers = await asyncio.gather(*(client.request("GET", f"/{i}") for i in range(20)))
    assert {answer.status for answer in answers} == {200}
    assert server.most_open_at_once <= 4


async def test_a_server_that_is_not_there_is_an_os_error() -> None:
    client = Http1Client("http://127.0.0.1:9", headers={}, max_connections=1)
    with pytest.raises(OSError):
        await client.request("GET", "/")


def test_only_plain_http_is_supported() -> None:
    with pytest.raises(ValueError, match="plain http"):
        Http1Client("https://127.0.0.1:3500", headers={}, max_connections=1)
