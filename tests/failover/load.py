"""Steady load for the failover tests: task submits, channel publishes, SSE subscribers.

Every request is kept with when it started and ended and what it answered, so a
test can tell when submits succeeded again after a failure and which writes were
accepted (202); subscribers reconnect with Last-Event-ID, as a browser does, and
keep every message id they heard, in order.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from taskrelay import sse_client

REQUEST_TIMEOUT_S = 5.0
# One request per this many seconds and thread: about 25 a second each.
PACE_S = 0.04
# A subscriber whose stream ended tries again after this pause.
RECONNECT_PAUSE_S = 0.1
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Attempt:
    started: float
    ended: float
    status: int  # 0: no answer (connection refused, timeout)
    key: str  # the task's marker name, or the published message's sequence number
    accepted_id: str | None


@dataclass
class Writer:
    """One thread posting one kind of write to one web process, paced."""

    base_url: str
    kind: str  # "task" or "message"
    marker_dir: Path
    channel: str
    attempts: list[Attempt] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sequence: int = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"load-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            assert not self._thread.is_alive(), "a load thread did not stop"

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S) as http:
            while not self._stopping.is_set():
                self._attempt(http)
                self._stopping.wait(PACE_S)

    def _attempt(self, http: httpx.Client) -> None:
        self._sequence += 1
        if self.kind == "task":
            key = uuid.uuid4().hex
            path = "/api/tasks"
            body: dict[str, object] = {
                "task": "record_run",
                "kwargs": {"marker_dir": str(self.marker_dir), "name": key},
            }
        else:
            key = f"{self.base_url}#{self._sequence}"
            path = f"/api/channels/{self.channel}/messages"
            body = {"data": key}
        started = time.monotonic()
        try:
            response = http.post(path, json=body)
            status, doc = response.status_code, response.json()
        except (httpx.HTTPError, ValueError):
            status, doc = 0, {}
        accepted = str(doc.get("id")) if status == 202 else None
        self.attempts.append(Attempt(started, time.monotonic(), status, key, accepted))

    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 202]

    def first_success_after(self, moment: float) -> float | None:
        """When the first request that began after ``moment`` was accepted."""
        ends = [a.ended for a in self.attempts if a.status == 202 and a.started > moment]
        return min(ends) if ends else None


@dataclass
class Subscriber:
    """An SSE client of one channel that resumes from the last id it heard."""

    base_url: str
    channel: str
    received: list[tuple[str, str]] = field(default_factory=list)  # (id, data)
    heard_at: list[float] = field(default_factory=list)  # time.monotonic() of each
    reconnects: int = 0
    gaps: int = 0  # gap notices: the stream could not resume exactly after the last id
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="load-sse", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            assert not self._thread.is_alive(), "a subscriber thread did not stop"

    def _run(self) -> None:
        # The web's heartbeats (SSE_HEARTBEAT_S) arrive well within the read timeout.
        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S) as http:
            while not self._stopping.is_set():
                headers = {"Last-Event-ID": self.received[-1][0]} if self.received else {}
                # The web or Redis went away: resume, as a browser's EventSource does.
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    self._follow(http, headers)
                self.reconnects += 1
                self._stopping.wait(RECONNECT_PAUSE_S)

    def _follow(self, http: httpx.Client, headers: dict[str, str]) -> None:
        path = f"/api/channels/{self.channel}/events"
        with http.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                return
            for event in sse_client.parse(self._lines(response)):
                if event.event == "message":
                    doc = json.loads(event.data)
                    self.received.append((str(doc["id"]), str(doc["data"])))
                    self.heard_at.append(time.monotonic())
                elif event.event == "gap":
                    self.gaps += 1

    def _lines(self, response: httpx.Response) -> Iterator[str]:
        for line in response.iter_lines():
            if self._stopping.is_set():
                return
            yield line

    def first_heard(self) -> dict[str, float]:
        """When each message id was first heard."""
        found: dict[str, float] = {}
        for (message_id, _), at in zip(self.received, self.heard_at, strict=True):
            found.setdefault(message_id, at)
        return found
