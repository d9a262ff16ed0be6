"""The benchmark's HTTP client against a real server that closes idle keep-alive connections."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from taskrelay.bench.httpclient import Connection, Request

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
WAIT_S = 5.0


async def _answer_once_then_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, closed: asyncio.Event
) -> None:
    # Answers one request, then closes without "Connection: close", as a server does
    # with a connection left idle past its keep-alive bound.
    await reader.readuntil(b"\r\n\r\n")
    writer.write(ANSWER)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    closed.set()


async def _two_requests_across_a_close() -> tuple[list[int], int]:
    closed = asyncio.Event()
    accepted = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await _answer_once_then_close(reader, writer, closed)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = Request.build("127.0.0.1", port, "GET", "/")
    connection = Connection("127.0.0.1", port)
    try:
        first, _ = await connection.send(request.raw)
        await asyncio.wait_for(closed.wait(), WAIT_S)
        # The client sees the close only once its event loop has read the FIN.
        async with asyncio.timeout(WAIT_S):
            while connection.reader is not None and not connection.reader.at_eof():
                await asyncio.sleep(0.01)
        second, _ = await asyncio.wait_for(connection.send(request.raw), WAIT_S)
    finally:
        await connection.close()
        server.close()
        await server.wait_closed()
    return [first, second], accepted


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_next_request() -> None:
    # A thread of its own, as the benchmark runs its client in a process of its own: the
    # browser tests' Playwright keeps an event loop running on the test's thread.
    with ThreadPoolExecutor(max_workers=1) as thread:
        outcome = thread.submit(asyncio.run, _two_requests_across_a_close())
        statuses, connections = outcome.result(timeout=3 * WAIT_S)
    assert statuses == [200, 200]
    assert connections == 2
