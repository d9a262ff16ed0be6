"""Reading SSE streams in tests: a thread per stream, and waits that always time out."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from taskrelay import sse_client
from taskrelay.sse_client import Event

WAIT_S = 60.0
_END = Event(event="__end__", data="")


class SseReader:
    """Parses events from an iterable of lines in a background thread."""

    def __init__(self, lines: Callable[[], Iterable[str]], name: str = "sse-reader") -> None:
        self._events: queue.Queue[Event] = queue.Queue()
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(lines,), name=name, daemon=True)
        self._thread.start()

    def _read(self, lines: Callable[[], Iterable[str]]) -> None:
        try:
            for event in sse_client.parse(lines()):
                self._events.put(event)
        except BaseException as error:  # reported to the test by next()
            self.error = error
        finally:
            self.ended.set()
            self._events.put(_END)

    def next(self, timeout_s: float = WAIT_S) -> Event | None:
        """The next event; None when the stream ended; fails the test after the timeout."""
        try:
            event = self._events.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no SSE event within {timeout_s:g} s") from None
        return None if event is _END else event

    def messages(self, count: int, timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
        """The data of the next `count` message events (other events are skipped)."""
        deadline = time.monotonic() + timeout_s
        found: list[dict[str, Any]] = []
        while len(found) < count:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if event is None:
                raise AssertionError(f"stream ended after {len(found)} of {count} messages")
            if event.event == "message":
                found.append(json.loads(event.data))
        return found

    def join(self, timeout_s: float = WAIT_S) -> None:
        self._thread.join(timeout_s)


def http_lines(
    base_url: str, path: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Client, Callable[[], Iterator[str]]]:
    """An httpx client and a function that streams the lines of an SSE response."""
    client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=60.0))

    def lines() -> Iterator[str]:
        with client.stream("GET", path, headers=headers or {}) as response:
            if response.status_code != 200:
                response.read()
                raise AssertionError(f"{path}: {response.status_code} {response.text[:200]}")
            yield from response.iter_lines()

    return client, lines


def flask_lines(response: Any) -> Callable[[], Iterator[str]]:
    """The lines of a streamed Flask test-client response."""

    def lines() -> Iterator[str]:
        buffer = ""
        for chunk in response.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                yield line

    return lines
