"""An HTTP client of taskrelay's API, for the command line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

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


def parse_keywords(pairs: Iterable[str]) -> dict[str, Any]:
    """NAME=VALUE pairs (``--kw``), each value read as ``parse_value`` reads it."""
    keywords: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{pair!r} is not NAME=VALUE")
        keywords[name] = parse_value(value)
    return keywords


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

    def submit_workflow(self, description: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/workflows", json=description)

    def follow_workflow(self, workflow_id: str, timeout_s: float) -> Iterator[tuple[str, Any]]:
        """The workflow's events, as (name, data): ``workflow`` with the whole workflow,
        ``step`` with one step, until the workflow has ended."""
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=timeout_s)
        path = f"/api/workflows/{quote(workflow_id, safe='')}/events"
        with self.http.stream("GET", path, timeout=timeout) as response:
            _raise_for_error(response)
            for event in sse_client.parse(response.iter_lines()):
                if event.event in ("workflow", "step"):
                    yield event.event, json.loads(event.data)

    # Schedules: `ref` is a schedule's id or its name.

    def create_schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/schedules", json=body)

    def list_schedules(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("GET", "/api/schedules")["schedules"]
        return found

    def get_schedule(self, ref: str) -> dict[str, Any]:
        return self._json("GET", _schedule_path(ref))

    def update_schedule(self, ref: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._json("PATCH", _schedule_path(ref), json=changes)

    def delete_schedule(self, ref: str) -> None:
        self._request("DELETE", _schedule_path(ref))

    def run_schedule(self, ref: str) -> dict[str, Any]:
        """Fire the schedule's task now; the answer is the run, with its task's id."""
        return self._json("POST", f"{_schedule_path(ref)}/run")

    def schedule_runs(self, ref: str, limit: int) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self._json(
            "GET", f"{_schedule_path(ref)}/runs", params={"limit": limit}
        )["runs"]
        return runs

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **kwargs).json()
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(f"cannot reach {self.http.base_url}: {error}") from None
        _raise_for_error(response)
        return response


def _schedule_path(ref: str) -> str:
    return f"/api/schedules/{quote(ref, safe='')}"


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
