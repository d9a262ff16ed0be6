"""An HTTP client of taskrelay's API, for the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from taskrelay import sse_client
from taskrelay.errors import SetupError

DEFAULT_URL = "http://127.0.0.1:5000"
REQUEST_TIMEOUT_S = 10.0


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (5, 0.5, true, [1]), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class ApiError(SetupError):
    """The API answered with an error; the message is the API's own."""


class Client:
    """The API over HTTP. A token goes as ``Authorization: Bearer`` with every request,
    reads and event streams included (a server may close reads), never in a URL."""

    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def submit(self, task: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/tasks", json={"task": task, "args": args, "kwargs": kwargs})

    def publish(self, channel: str, data: Any) -> dict[str, Any]:
        """Publish on a channel; the API's answer names the message's id."""
        return self._json("POST", f"/api/channels/{channel}/messages", json={"data": data})

    def follow_task(self, task_id: str, timeout_s: float) -> Iterator[dict[str, Any]]:
        """The task's state documents as they change, until it finishes."""
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=timeout_s)
        with self.http.stream("GET", f"/api/tasks/{task_id}/events", timeout=timeout) as response:
            _raise_for_error(response)
            for event in sse_client.parse(response.iter_lines()):
                if event.event == "state":
                    yield json.loads(event.data)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(f"cannot reach {self.http.base_url}: {error}") from None
        _raise_for_error(response)
        body: dict[str, Any] = response.json()
        return body


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    try:
        error = response.json()["error"]
        message = error["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    raise ApiError(f"{response.status_code}: {message}")
