"""A minimal HTTP/1.1 keep-alive client on asyncio streams, light enough to load a server.

General clients spend more time per request than the servers they measure here;
this one writes prepared bytes and reads only the status, headers and body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

CONNECT_TIMEOUT_S = 5.0
RESPONSE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Request:
    host: str
    port: int
    raw: bytes

    @classmethod
    def build(
        cls, host: str, port: int, method: str, path: str, body: Any | None = None
    ) -> Request:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head = "\r\n".join(lines) + "\r\n\r\n"
        return cls(host, port, head.encode() + payload)

    def with_body(self, method: str, path: str, body: Any) -> Request:
        return Request.build(self.host, self.port, method, path, body)


class Connection:
    """One keep-alive connection; reconnects when the server closed it, before writing."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing() or self._closed_by_server():
            await self.close()
            await self._connect()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(raw)
        try:
            return await asyncio.wait_for(self._response(self.reader), RESPONSE_TIMEOUT_S)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    def _closed_by_server(self) -> bool:
        # A server closes a keep-alive connection that idled past its bound (the web's
        # is 5 s) without a word; a request written on it would fail unanswered.
        return self.reader is not None and self.reader.at_eof()

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S
        )

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = _headers(head)
        if headers.get("transfer-encoding") == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            await self.close()
        return status, body


def _headers(head: bytes) -> dict[str, str]:
    found = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip().lower()
    return found


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readline()
