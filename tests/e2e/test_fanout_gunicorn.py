"""Fan-out through real gunicorn to real SSE clients, with a real relay worker and Redis."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from taskrelay.processes import Child
from tests.e2e.fanout_support import fresh_channel, publish, tree_rss_bytes
from tests.sse_reader import SseReader, http_lines
from tests.support import start_web, stop, wait_until
from webapp.channels import metrics as channel_metrics
from webapp.channels.metrics import subscriber_counts

pytestmark = pytest.mark.usefixtures("relay_worker")

SUBSCRIBERS = 50
MESSAGES = 500


@pytest.fixture
def http(web: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web, timeout=10) as client:
        yield client


def open_readers(
    base_url: str, path: str, count: int, headers: dict[str, str] | None = None
) -> tuple[list[httpx.Client], list[SseReader]]:
    clients, readers = [], []
    for n in range(count):
        client, lines = http_lines(base_url, path, headers)
        clients.append(client)
        readers.append(SseReader(lines, name=f"subscriber-{n}"))
    return clients, readers


def every_channel(http: httpx.Client) -> list[dict[str, object]]:
    """Every page of GET /api/channels."""
    found: list[dict[str, object]] = []
    cursor = None
    while True:
        query = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = http.get("/api/channels", params=query).json()
        found += page["channels"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def wait_subscribed(redis_client: redis.Redis, label: str, count: int) -> None:
    wait_until(
        lambda: subscriber_counts(redis_client).get(label, 0) >= count,
        what=f"{count} subscribers of {label}",
    )


def close_all(clients: list[httpx.Client]) -> None:
    for client in clients:
        client.close()


def test_fifty_concurrent_subscribers_each_receive_all_500_messages_in_order(
    web: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    clients, readers = open_readers(web, f"/api/channels/{channel}/events", SUBSCRIBERS)
    try:
        wait_subscribed(redis_client, channel, SUBSCRIBERS)
        ids = [publish(http, channel, n) for n in range(MESSAGES)]
        for reader in readers:
            received = reader.messages(MESSAGES, timeout_s=180)
            assert [m["data"] for m in received] == list(range(MESSAGES))
            assert [m["id"] for m in received] == ids
        listed = {c["name"]: c for c in every_channel(http)}
        assert listed[channel]["length"] == MESSAGES
        assert listed[channel]["last_id"] == ids[-1]
        assert listed[channel]["subscribers"] == SUBSCRIBERS
        wait_until(
            lambda: (
                channel_metrics.cluster(redis_client)[channel].delivered == SUBSCRIBERS * MESSAGES
            ),
            what="every delivery to be counted",
        )
        assert channel_metrics.cluster(redis_client)[channel].published == MESSAGES
    finally:
        close_all(clients)


def test_a_subscriber_that_reconnects_with_last_event_id_gets_exactly_what_it_missed(
    web: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    [first_client], [first] = open_readers(web, f"/api/channels/{channel}/events", 1)
    wait_subscribed(redis_client, channel, 1)
    before = [publish(http, channel, n) for n in range(10)]
    seen = first.messages(10)
    first_client.close()  # disconnected mid-stream
    missed = [publish(http, channel, n) for n in range(10, 20)]
    [again_client], [again] = open_readers(
        web, f"/api/channels/{channel}/events", 1, headers={"Last-Event-ID": seen[-1]["id"]}
    )
    try:
        assert [m["id"] for m in again.messages(10)] == missed
        live = publish(http, channel, 20)
        assert [m["id"] for m in again.messages(1)] == [live]
        assert [m["id"] for m in seen] == before
    finally:
        again_client.close()


def test_a_pattern_subscriber_hears_matching_channels_only(
    web: str, http: httpx.Client, redis_client: redis.Redis
) -> None:
    prefix = f"news{uuid.uuid4().hex[:8]}"
    pattern = f"{prefix}.*"
    [client], [reader] = open_readers(web, f"/api/events?pattern={pattern}", 1)
    try:
        wait_subscribed(redis_client, f"pattern:{pattern}", 1)
        publish(http, f"{prefix}.eu", "eu")
        publish(http, f"{prefix}.eu.fr", "two segments: no match")
        publish(http, f"{prefix}", "no segment: no match")
        publish(http, f"sports{prefix[4:]}.eu", "other prefix: no match")
        publish(http, f"{prefix}.us", "us")
        received = reader.messages(2)
        assert [(m["channel"], m["data"]) for m in received] == [
            (f"{prefix}.eu", "eu"),
            (f"{prefix}.us", "us"),
        ]
        publish(http, f"{prefix}.last", "last")
        assert [m["data"] for m in reader.messages(1)] == ["last"]
    finally:
        client.close()


# The stuck client test: a tiny buffer, and far more bytes than every buffer on
# the way (the per-client one and the kernel's) could hold.
STUCK_BUFFER_MESSAGES = 20
FLOOD_MESSAGES = 1_500
FLOOD_MESSAGE_BYTES = 16_384
# The web process may grow by less than half of what was published.
MEMORY_BOUND_BYTES = FLOOD_MESSAGES * FLOOD_MESSAGE_BYTES // 2


@pytest.fixture
def small_buffer_web(redis_url: str, log_dir: Path) -> Iterator[tuple[Child, str]]:
    child, base_url = start_web(
        redis_url,
        log_dir,
        env={
            "TASKRELAY_WEB_WORKERS": "1",
            "TASKRELAY_SSE_BUFFER_MESSAGES": str(STUCK_BUFFER_MESSAGES),
            # Long enough that the stuck stream is still there when the test reads it.
            "TASKRELAY_SSE_WRITE_TIMEOUT_S": "300",
        },
    )
    yield child, base_url
    stop(child)


def stuck_client(base_url: str, path: str) -> socket.socket:
    """A client that sends its request and then never reads."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def read_to_end(sock: socket.socket, timeout_s: float = 60) -> bytes:
    sock.settimeout(timeout_s)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_that_stops_reading_is_cut_off_and_memory_stays_bounded(
    small_buffer_web: tuple[Child, str], redis_client: redis.Redis
) -> None:
    child, base_url = small_buffer_web
    assert child.process is not None
    channel = fresh_channel("flood")
    path = f"/api/channels/{channel}/events"
    stuck = stuck_client(base_url, path)
    [healthy_client], [healthy] = open_readers(base_url, path, 1)
    try:
        wait_subscribed(redis_client, channel, 2)
        rss_before = tree_rss_bytes(child.process.pid)
        payload = "x" * FLOOD_MESSAGE_BYTES
        with httpx.Client(base_url=base_url, timeout=10) as http:
            for n in range(FLOOD_MESSAGES):
                publish(http, channel, {"n": n, "pad": payload})
        received = healthy.messages(FLOOD_MESSAGES, timeout_s=180)
        assert [m["data"]["n"] for m in received] == list(range(FLOOD_MESSAGES))
        grown = tree_rss_bytes(child.process.pid) - rss_before
        assert grown < MEMORY_BOUND_BYTES, f"web grew by {grown} bytes"
        # Reading at last lets the stuck stream finish its write; it then ends
        # with the hint to reconnect instead of sending the rest.
        tail = read_to_end(stuck)
        assert tail.count(b"event: message") < FLOOD_MESSAGES
        assert tail.endswith(b"retry: 1000\n\n\r\n0\r\n\r\n")  # the last chunk of the stream
        wait_until(
            lambda: subscriber_counts(redis_client).get(channel, 0) == 1,
            what="the stuck client to be dropped",
        )
        assert channel_metrics.cluster(redis_client)[channel].dropped > 0
    finally:
        stuck.close()
        healthy_client.close()
