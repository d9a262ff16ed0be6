"""The web's HTTP handler reads request headers with webapp.request_head, not the email package.

The real handler (webapp.gunicorn_worker.IdleBoundHandler) serves one end of a
socket pair. A valid head gives the application the same WSGI environ as gevent's
own parse (the stdlib's ``http.client.parse_headers``) gave; a head that RFC 9112
asks a server to refuse is answered 400 and never reaches the application.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.workers.ggevent import PyWSGIHandler

from tests.integration.handler_pair import StartResponse, serve_one_connection
from webapp import request_head
from webapp.gunicorn_worker import IdleBoundHandler

# The environ keys a request's head decides; the rest are the server's.
HEAD_KEYS = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH")


def _echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Answers with what the head put in the environ, and the body it read."""
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_") or k in HEAD_KEYS}
    seen["body"] = environ["wsgi.input"].read().decode("latin-1")
    body = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def _exchange(
    raw: bytes, handler_class: type = IdleBoundHandler, config: Config | None = None
) -> bytes:
    """Everything the handler answers to ``raw``, read until it closes the connection."""
    return b"".join(serve_one_connection(_echo, raw, handler_class=handler_class, config=config))


def _answers(raw: bytes, handler_class: type = IdleBoundHandler) -> list[tuple[int, Any]]:
    """(status, echoed environ or None) of each response on the connection."""
    found: list[tuple[int, Any]] = []
    rest = _exchange(raw, handler_class)
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        if fields.get(b"Transfer-Encoding") == b"chunked":
            size_line, _, rest = rest.partition(b"\r\n")
            body, rest = rest[: int(size_line, 16)], rest[int(size_line, 16) + 2 :]
            rest = rest.partition(b"0\r\n\r\n")[2]
        else:
            length = int(fields.get(b"Content-Length", b"0"))
            body, rest = rest[:length], rest[length:]
        found.append((status, json.loads(body) if status == 200 else None))
    return found


VALID_HEADS = {
    "typical": b"GET /api/tasks?state=QUEUED HTTP/1.1\r\nHost: x:5000\r\n"
    b"User-Agent: t/1\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n",
    "post with a body": b"POST /api/tasks HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    b'{"task":"noop"}',
    "repeated fields and cookies": b"GET / HTTP/1.1\r\nHost: x\r\nAccept: a\r\n"
    b"accept: b\r\nCookie: c=1\r\nCookie: d=2\r\n\r\n",
    "spaces and tabs around values": b"GET / HTTP/1.1\r\nHost:x\r\nX-Id: \t 7 \t\r\n\r\n",
    "an empty value and bare LF endings": b"GET / HTTP/1.1\nHost: x\nX-Empty:\n\n",
    "an underscore in a name (dropped)": b"GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded: 1\r\n\r\n",
    "latin-1 in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9\r\n\r\n",
    "chunked, with a length to drop": b"POST / HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    # With Connection: close, 99: the stdlib counted the empty line too, so refused 100.
    "99 fields": b"GET / HTTP/1.1\r\n"
    + b"".join(b"X-F%d: %d\r\n" % (i, i) for i in range(98))
    + b"\r\n",
}


@pytest.mark.parametrize("raw", VALID_HEADS.values(), ids=VALID_HEADS.keys())
def test_a_valid_head_gives_the_environ_that_the_stdlib_parse_gave(raw: bytes) -> None:
    request = raw.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1).replace(
        b"HTTP/1.1\n", b"HTTP/1.1\nConnection: close\n", 1
    )
    ours = _answers(request)
    stdlib = _answers(request, PyWSGIHandler)

    assert [status for status, _ in ours] == [200]
    assert ours == stdlib


def test_keep_alive_requests_on_one_connection_are_read_one_after_another() -> None:
    post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    last = b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    answers = _answers(post + post + last)

    assert [status for status, _ in answers] == [200, 200, 200]
    assert [seen["PATH_INFO"] for _, seen in answers] == ["/a", "/a", "/b"]
    assert answers[0][1]["body"] == "{}"


def test_a_folded_line_joins_its_field_with_one_space() -> None:
    answers = _answers(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: one\r\n \t two\r\nConnection: close\r\n\r\n"
    )

    assert answers[0][1]["HTTP_X_LONG"] == "one two"


REFUSED_HEADS = {
    "a space before the colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "no colon": b"GET / HTTP/1.1\r\nHost: x\r\nnot a field\r\n\r\n",
    "an empty name": b"GET / HTTP/1.1\r\n: x\r\n\r\n",
    "a folded first line": b"GET / HTTP/1.1\r\n folded: x\r\nHost: x\r\n\r\n",
    "lengths that disagree": b"POST / HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "101 fields": b"GET / HTTP/1.1\r\n"
    + b"".join(b"X-F%d: %d\r\n" % (i, i) for i in range(101))
    + b"\r\n",
    "a line over 64 KiB": b"GET / HTTP/1.1\r\nX-Big: "
    + b"a" * request_head.MAX_LINE_BYTES
    + b"\r\n\r\n",
}


@pytest.mark.parametrize("raw", REFUSED_HEADS.values(), ids=REFUSED_HEADS.keys())
def test_a_head_the_rfc_refuses_is_answered_400_and_never_reaches_the_app(raw: bytes) -> None:
    answers = _answers(raw)

    assert answers == [(400, None)]


def test_lookups_ignore_case_and_deleting_removes_every_occurrence() -> None:
    head = request_head.RequestHead(
        [("Content-Length", "2"), ("Accept", "a"), ("content-length", "2"), ("accept", "b")]
    )

    assert head.get("CONTENT-LENGTH") == "2"
    assert head.get("ACCEPT") == "a"  # the first of a repeated field, as before
    del head["Content-Length"]
    assert head.get("content-length") is None
    assert head.get("missing", "default") == "default"


def test_the_access_log_still_gets_its_line_when_it_is_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Config()
    config.set("accesslog", "-")

    _exchange(b"GET /logged HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", config=config)

    assert '"GET /logged HTTP/1.1" 200' in capsys.readouterr().out
