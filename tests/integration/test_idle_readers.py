"""The task feed and the channel hub read Redis only while someone listens.

A web process's reader whose last SSE stream has gone ends after its idle grace
and gives its Redis connection back; the next stream starts it again; a stream
that resumes with Last-Event-ID across that pause gets exactly what it missed.
The app is served over real HTTP (werkzeug's threaded server, in this process, so
the reader threads can be seen) and once by gunicorn under gevent.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis
from flask import Flask
from werkzeug.serving import make_server

from taskrelay import sse_client
from taskrelay.processes import Child
from taskrelay.sse_client import Event
from tasks import keys
from tests.support import start_web, stop, wait_until
from webapp import create_app
from webapp.services import services

# Short, so that the tests see readers stop; production waits READER_IDLE_GRACE_S.
IDLE_S = 0.2
# A stream notices its client left at its next keep-alive write.
HEARTBEAT_S = 0.2
FEED_THREAD = "task-feed"
HUB_THREAD = "channel-hub"
# How long a reader may take to stop: the grace, plus one blocking read or poll (1 s).
STOPPED_WITHIN_S = 10.0
EVENTS_WITHIN_S = 30.0


@pytest.fixture
def served(redis_url: str) -> Iterator[tuple[Flask, str]]:
    """The app over real HTTP in this process, and its base URL."""
    app = create_app(
        {"REDIS_URL": redis_url, "SSE_READER_IDLE_S": IDLE_S, "SSE_HEARTBEAT_S": HEARTBEAT_S}
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-web", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        with app.app_context():
            services().close()


@pytest.fixture
def base_url(served: tuple[Flask, str]) -> str:
    return served[1]


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


@contextmanager
def stream(base_url: str, path: str, last_event_id: str | None = None) -> Iterator[Iterator[Event]]:
    """The events of one SSE response; leaving closes the connection, as a closed tab does."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    with (
        httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=20.0)) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        yield sse_client.parse(response.iter_lines())


def take(events: Iterator[Event], kind: str, count: int) -> list[Event]:
    """The next ``count`` events of one kind (keep-alives and hints are skipped)."""
    deadline = time.monotonic() + EVENTS_WITHIN_S
    found: list[Event] = []
    for event in events:
        assert time.monotonic() < deadline, f"only {len(found)} of {count} {kind} events"
        if event.event == kind:
            found.append(event)
            if len(found) == count:
                return found
    raise AssertionError(f"the stream ended after {len(found)} of {count} {kind} events")


# -- what runs, seen from this process and from Redis --


def threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def redis_clients_of(pids: set[int], redis_client: redis.Redis) -> list[dict[str, Any]]:
    """CLIENT LIST's entries for the connections these processes hold."""
    redis_port = int(redis_client.connection_pool.connection_kwargs["port"])
    ports = {
        connection.laddr.port
        for pid in pids
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == redis_port
    }
    return [
        entry
        for entry in redis_client.client_list()
        if int(str(entry["addr"]).rsplit(":", 1)[1]) in ports
    ]


def reading_task_events(pids: set[int], redis_client: redis.Redis) -> bool:
    return any(entry["cmd"] == "xread" for entry in redis_clients_of(pids, redis_client))


def pattern_subscribed(pids: set[int], redis_client: redis.Redis) -> bool:
    return any(int(entry["psub"]) > 0 for entry in redis_clients_of(pids, redis_client))


def hub_presence(pids: set[int], redis_client: redis.Redis) -> list[str]:
    """This process's hub ids in the index of hubs, and its subscriber-count keys."""
    marks = tuple(f":{pid}:" for pid in pids)
    listed = [str(hub_id) for hub_id in redis_client.zrange(keys.HUB_INDEX, 0, -1)]
    counted = [str(k) for k in redis_client.scan_iter(match=keys.hub_subscribers("*"))]
    return [name for name in (*listed, *counted) if any(mark in name for mark in marks)]


THIS_PROCESS = {os.getpid()}


def feed_stopped(redis_client: redis.Redis) -> bool:
    return not threads_named(FEED_THREAD) and not reading_task_events(THIS_PROCESS, redis_client)


def hub_stopped(redis_client: redis.Redis) -> bool:
    return (
        not threads_named(HUB_THREAD)
        and not pattern_subscribed(THIS_PROCESS, redis_client)
        and not hub_presence(THIS_PROCESS, redis_client)
    )


# -- tasks and channels --


def submit(http: httpx.Client) -> str:
    response = http.post("/api/tasks", json={"task": "consume", "args": [1]})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["id"]
    return task_id


def finished(http: httpx.Client, task_id: str) -> None:
    def probe() -> bool:
        return bool(http.get(f"/api/tasks/{task_id}").json()["state"] == "SUCCESS")

    wait_until(probe, timeout_s=EVENTS_WITHIN_S, what=f"task {task_id} to succeed")


def task_events_after(redis_client: redis.Redis, after_id: str) -> list[tuple[str, str]]:
    """(id, data) of every task event after ``after_id``, as Redis holds them."""
    entries: Any = redis_client.xrange(keys.TASK_EVENTS, min=f"({after_id}")
    return [(str(entry_id), str(fields["data"])) for entry_id, fields in entries]


def until_success(events: Iterator[Event], task_id: str) -> list[Event]:
    """Task events, until ``task_id`` succeeded."""
    deadline = time.monotonic() + EVENTS_WITHIN_S
    found: list[Event] = []
    for event in events:
        assert time.monotonic() < deadline, f"{task_id} did not succeed on the stream"
        if event.event != "task":
            continue
        found.append(event)
        data = json.loads(event.data)
        if data["id"] == task_id and data["state"] == "SUCCESS":
            return found
    raise AssertionError(f"the stream ended before {task_id} succeeded")


def fresh_channel() -> str:
    return f"idle-{uuid.uuid4().hex[:10]}"


def publish(http: httpx.Client, channel: str, data: Any) -> str:
    response = http.post(f"/api/channels/{channel}/messages", json={"data": data})
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]
    return message_id


def relayed(http: httpx.Client, channel: str, count: int) -> None:
    def probe() -> bool:
        found = http.get(f"/api/channels/{channel}/messages", params={"limit": 1000}).json()
        return len(found["messages"]) >= count

    wait_until(probe, timeout_s=EVENTS_WITHIN_S, what=f"{count} messages in {channel}")


def message_ids(events: list[Event]) -> list[str]:
    return [json.loads(event.data)["id"] for event in events]


# -- the task feed --


@pytest.mark.usefixtures("task_worker")
def test_the_task_feed_stops_reading_a_grace_after_its_last_stream_left(
    base_url: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    with stream(base_url, "/api/tasks/events") as events:
        task_id = submit(http)
        until_success(events, task_id)
        assert threads_named(FEED_THREAD)
        assert reading_task_events(THIS_PROCESS, redis_client)
    wait_until(
        lambda: feed_stopped(redis_client),
        timeout_s=STOPPED_WITHIN_S,
        what="the feed's thread to end and its XREAD connection to close",
    )


@pytest.mark.usefixtures("task_worker")
def test_a_stream_opened_after_the_feed_stopped_gets_new_events(
    base_url: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    with stream(base_url, "/api/tasks/events"):
        pass
    wait_until(lambda: feed_stopped(redis_client), timeout_s=STOPPED_WITHIN_S, what="feed stop")
    finished(http, submit(http))  # before the next stream: not its news
    with stream(base_url, "/api/tasks/events") as events:
        task_id = submit(http)
        received = [json.loads(e.data) for e in until_success(events, task_id)]
    assert {data["id"] for data in received} == {task_id}
    assert received[0]["state"] == "QUEUED" and received[-1]["state"] == "SUCCESS"


@pytest.mark.usefixtures("task_worker")
def test_a_stream_resuming_across_the_feeds_stop_gets_exactly_what_it_missed(
    base_url: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    with stream(base_url, "/api/tasks/events") as events:
        seen = until_success(events, submit(http))
    last_id = str(seen[-1].id)
    wait_until(lambda: feed_stopped(redis_client), timeout_s=STOPPED_WITHIN_S, what="feed stop")

    while_stopped = [submit(http), submit(http)]
    for task_id in while_stopped:
        finished(http, task_id)
    missed = task_events_after(redis_client, last_id)
    assert {json.loads(data)["id"] for _, data in missed} == set(while_stopped)

    with stream(base_url, "/api/tasks/events", last_event_id=last_id) as events:
        replayed = take(events, "task", len(missed))
        assert [(event.id, event.data) for event in replayed] == missed
        # Then the restarted reader's live events, with nothing sent twice.
        live_task = submit(http)
        live = until_success(events, live_task)
    received = [(event.id, event.data) for event in (*replayed, *live)]
    assert received == task_events_after(redis_client, last_id)[: len(received)]
    assert json.loads(received[-1][1])["id"] == live_task


# -- the channel hub --


@pytest.mark.usefixtures("relay_worker")
def test_the_channel_hub_unsubscribes_a_grace_after_its_last_stream_left(
    base_url: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    with stream(base_url, f"/api/channels/{channel}/events") as events:
        sent = publish(http, channel, "hello")
        assert message_ids(take(events, "message", 1)) == [sent]
        assert threads_named(HUB_THREAD)
        assert pattern_subscribed(THIS_PROCESS, redis_client)
        # Its subscriber counts are written beside the other web processes'.
        wait_until(lambda: hub_presence(THIS_PROCESS, redis_client), what="the hub's counts")
    wait_until(
        lambda: hub_stopped(redis_client),
        timeout_s=STOPPED_WITHIN_S,
        what="the hub's thread to end, its subscription to close and its counts to go",
    )


@pytest.mark.usefixtures("relay_worker")
def test_a_stream_opened_after_the_hub_stopped_hears_new_messages(
    base_url: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    with stream(base_url, f"/api/channels/{channel}/events"):
        pass
    wait_until(lambda: hub_stopped(redis_client), timeout_s=STOPPED_WITHIN_S, what="hub stop")
    publish(http, channel, "before")  # before the next stream: not its news
    relayed(http, channel, 1)
    with stream(base_url, f"/api/channels/{channel}/events") as events:
        sent = publish(http, channel, "after")
        assert message_ids(take(events, "message", 1)) == [sent]
        assert threads_named(HUB_THREAD)


@pytest.mark.usefixtures("relay_worker")
def test_a_stream_resuming_across_the_hubs_stop_gets_exactly_what_it_missed(
    base_url: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    with stream(base_url, f"/api/channels/{channel}/events") as events:
        first = publish(http, channel, 0)
        assert message_ids(take(events, "message", 1)) == [first]
    wait_until(lambda: hub_stopped(redis_client), timeout_s=STOPPED_WITHIN_S, what="hub stop")

    missed = [publish(http, channel, n) for n in range(1, 4)]
    relayed(http, channel, 4)
    with stream(base_url, f"/api/channels/{channel}/events", last_event_id=first) as events:
        assert message_ids(take(events, "message", 3)) == missed
        live = publish(http, channel, "live")
        # The next message is the live one: nothing missed came twice.
        assert message_ids(take(events, "message", 1)) == [live]


# -- under gunicorn and gevent --


@pytest.fixture
def gunicorn_web(redis_url: str, log_dir: Path) -> Iterator[tuple[Child, str]]:
    """One gunicorn worker, so every stream is the same process's."""
    env = {
        "TASKRELAY_WEB_WORKERS": "1",
        "TASKRELAY_SSE_READER_IDLE_S": str(IDLE_S),
        "TASKRELAY_SSE_HEARTBEAT_S": str(HEARTBEAT_S),
    }
    child, url = start_web(redis_url, log_dir, env)
    try:
        yield child, url
    finally:
        stop(child)


def gunicorn_pids(child: Child) -> set[int]:
    assert child.process is not None
    master = psutil.Process(child.process.pid)
    return {master.pid, *(process.pid for process in master.children(recursive=True))}


@pytest.mark.usefixtures("task_worker", "relay_worker")
def test_under_gunicorn_both_readers_let_go_of_redis_when_their_streams_leave_and_return(
    gunicorn_web: tuple[Child, str], redis_client: redis.Redis
) -> None:
    child, url = gunicorn_web
    pids = gunicorn_pids(child)
    channel = fresh_channel()

    def idle() -> bool:
        return not (
            reading_task_events(pids, redis_client)
            or pattern_subscribed(pids, redis_client)
            or hub_presence(pids, redis_client)
        )

    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(2):  # and again once both have stopped
            with (
                stream(url, "/api/tasks/events") as task_events,
                stream(url, f"/api/channels/{channel}/events") as channel_events,
            ):
                until_success(task_events, submit(http))
                sent = publish(http, channel, "hello")
                assert message_ids(take(channel_events, "message", 1)) == [sent]
                assert reading_task_events(pids, redis_client)
                assert pattern_subscribed(pids, redis_client)
            wait_until(idle, timeout_s=STOPPED_WITHIN_S, what="the web's readers to let go")


# -- stopping readers that stopped for want of streams --


@pytest.mark.usefixtures("task_worker", "relay_worker")
def test_readers_stopped_for_want_of_streams_still_end_new_streams_when_the_web_stops(
    served: tuple[Flask, str], redis_client: redis.Redis
) -> None:
    app, url = served
    channel = fresh_channel()
    for path in ("/api/tasks/events", f"/api/channels/{channel}/events"):
        with stream(url, path):
            pass
    wait_until(
        lambda: feed_stopped(redis_client) and hub_stopped(redis_client),
        timeout_s=STOPPED_WITHIN_S,
        what="both readers to stop",
    )
    # What gunicorn's SIGTERM handler calls (gunicorn_conf.STREAM_SOURCES).
    for name in ("taskrelay.task_feed", "taskrelay.hub"):
        app.extensions[name].request_stop()
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=5.0)) as client:
        for path in ("/api/tasks/events", f"/api/channels/{channel}/events"):
            with client.stream("GET", path) as response:
                assert response.status_code == 200
                assert "retry: " in "".join(response.iter_text())
    assert not threads_named(FEED_THREAD) and not threads_named(HUB_THREAD)
    started = time.monotonic()
    for name in ("taskrelay.task_feed", "taskrelay.hub"):
        app.extensions[name].stop()
    assert time.monotonic() - started < 1.0
