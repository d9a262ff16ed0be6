"""A request's header fields, read as HTTP defines them rather than through the ``email`` package.

gevent's ``pywsgi`` reads a request's headers with ``http.client.parse_headers``,
which joins the lines and hands them to the ``email`` package's feed parser: about a
tenth of the CPU of a small API request served here (docs/benchmarks.md). Header
fields need none of what that parser is for (MIME structure, defects collected
instead of refused). ``read`` takes the same lines with the same bounds (a line of
at most 65,536 bytes, at most 100 fields) and is stricter where RFC 9112 asks a
server to be: a line that is not ``name: value`` with a token for its name (a space
before the colon included), a folded line with nothing to continue, and
Content-Length fields that disagree are refused with 400 instead of being dropped
or guessed at. A folded line (obsolete line folding) joins its field with one
space, as RFC 9112 section 5.2 allows.

``RequestHead`` answers what ``pywsgi`` and gunicorn ask of the parsed headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

# http.client's bounds, which pywsgi's parse had.
MAX_LINE_BYTES = 65_536
MAX_FIELDS = 100

# RFC 9110 section 5.1: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_END_OF_HEAD = (b"\r\n", b"\n", b"")
_WHITESPACE = " \t"
# Fields that the WSGI environ holds under keys of their own, without HTTP_.
_OWN_ENVIRON_KEYS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


class RequestHead:
    """A request's header fields in the order they came, looked up without regard to case.

    ``status`` is empty for a head that was read whole; otherwise it says what was
    wrong, and ``pywsgi`` answers 400.
    """

    def __init__(self, fields: list[tuple[str, str]], status: str = "") -> None:
        self._fields = fields
        self.status = status
        # pywsgi and gunicorn look up about eight fields a request: each is one lookup
        # here, not a pass over the fields.
        self._first = _first_by_name(fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    getheader = get

    def __delitem__(self, name: str) -> None:
        wanted = name.lower()
        self._fields = [field for field in self._fields if field[0].lower() != wanted]
        self._first = _first_by_name(self._fields)

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    @property
    def headers(self) -> Iterator[str]:
        """Each field as a line, as the ``email`` package's message gives them."""
        for name, value in self._fields:
            yield f"{name}: {value}\r\n"

    def environ_items(self) -> Iterator[tuple[str, str]]:
        """Each field as a WSGI environ item (``HTTP_X_ID``), as ``pywsgi`` names them.

        A name with an underscore is dropped (it would read as a dash once in the
        environ), and Content-Type and Content-Length are the environ's own keys.
        ``pywsgi`` itself gets these by formatting each field as a line and splitting
        it again.
        """
        for name, value in self._fields:
            if "_" in name:
                continue
            key = name.replace("-", "_").upper()
            if key not in _OWN_ENVIRON_KEYS:
                yield "HTTP_" + key, value

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")


def read(stream: BinaryIO) -> RequestHead:
    """The header fields up to the empty line that ends a request's head."""
    fields: list[tuple[str, str]] = []
    lines = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if len(raw) > MAX_LINE_BYTES:
            return RequestHead([], "Line too long")
        if raw in _END_OF_HEAD:
            break
        lines += 1
        if lines > MAX_FIELDS:
            return RequestHead([], f"More than {MAX_FIELDS} header lines")
        line = raw.decode("latin-1").rstrip("\r\n")
        if line[:1] in (" ", "\t"):
            if not fields:
                return RequestHead([], "A folded header line continues no field")
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip(_WHITESPACE)}".strip(_WHITESPACE))
            continue
        name, colon, value = line.partition(":")
        if not colon or _TOKEN.fullmatch(name) is None:
            return RequestHead([], "Invalid header line")
        fields.append((name, value.strip(_WHITESPACE)))
    if _lengths_disagree(fields):
        return RequestHead([], "Content-Length fields disagree")
    return RequestHead(fields)


def _first_by_name(fields: list[tuple[str, str]]) -> dict[str, str]:
    """Each field's first value by its name in lower case."""
    first: dict[str, str] = {}
    for name, value in fields:
        first.setdefault(name.lower(), value)
    return first


def _lengths_disagree(fields: list[tuple[str, str]]) -> bool:
    lengths = {value for name, value in fields if name.lower() == "content-length"}
    return len(lengths) > 1
