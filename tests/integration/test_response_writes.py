"""The web's HTTP handler sends a small response's head and body in one socket write.

The handler runs on one end of a SOCK_SEQPACKET socket pair: every send is one record
there, so the records the client reads are the handler's writes, one for one.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.handler_pair import App, StartResponse, serve_one_connection
from webapp.gunicorn_worker import HEAD_AND_BODY_MAX_BYTES

SMALL = b'{"status":"ok"}'
LARGE = b"x" * (HEAD_AND_BODY_MAX_BYTES + 1)


def _sized(body: bytes) -> App:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body] if body else []

    return app


def _streamed(parts: list[bytes]) -> App:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield from parts

    return app


def _writes(app: App) -> list[bytes]:
    """The records one GET's answer arrived in, read until the handler closes."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    return serve_one_connection(app, request, kind=socket.SOCK_SEQPACKET)


def _head_and_body(records: list[bytes]) -> tuple[bytes, bytes]:
    head, _, body = b"".join(records).partition(b"\r\n\r\n")
    return head, body


def test_a_small_answer_goes_out_in_one_write() -> None:
    records = _writes(_sized(SMALL))

    assert len(records) == 1
    head, body = _head_and_body(records)
    assert head.startswith(b"HTTP/1.1 200 OK") and body == SMALL


def test_an_empty_body_still_sends_its_head() -> None:
    records = _writes(_sized(b""))

    assert len(records) == 1
    assert records[0].startswith(b"HTTP/1.1 200 OK") and records[0].endswith(b"\r\n\r\n")


def test_a_large_body_is_not_copied_into_the_head() -> None:
    records = _writes(_sized(LARGE))

    assert records[0].endswith(b"\r\n\r\n")
    assert _head_and_body(records)[1] == LARGE


@pytest.mark.parametrize("parts", [[b"data: 1\n\n", b"data: 2\n\n"], [b"", b"data: 1\n\n"]])
def test_a_stream_sends_its_head_with_its_first_part(parts: list[bytes]) -> None:
    records = _writes(_streamed(parts))

    # Chunked: the head with the first non-empty part, then each part, then the end.
    first = next(part for part in parts if part)
    assert records[0].startswith(b"HTTP/1.1 200 OK")
    assert first in records[0]
    assert records[-1] == b"0\r\n\r\n"
    assert b"".join(records).count(b"data: ") == sum(1 for part in parts if part)
