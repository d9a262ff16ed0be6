"""SSE floods and pattern storms through real gunicorn: bounded, and over when the clients go.

A flood of streams from one client is refused past its share while the API keeps
answering; a burst of `pattern=*` subscribers with thousands of channels stored
reads nothing per channel, and the web is idle again within seconds of the
clients leaving.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from tasks import channels
from tasks.channels import log as channel_log
from tests.faults.conftest import WorkerFactory
from tests.support import start_web, stop, wait_until
from webapp.channels.metrics import subscriber_counts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# The API must answer within this long during a flood, in seconds.
API_BOUND_S = 1.0
# Once the clients have gone the web's work must stop within this long, in seconds.
QUIET_WITHIN_S = 5.0
# "Idle": at most this much CPU, in seconds, across the web's processes in one second.
IDLE_CPU_S_PER_S = 0.2

# The flood: gunicorn workers serving 100 connections each (2 workers), one client
# opening three times that many streams; it may hold 20 per web process.
FLOOD_WEB_CONNECTIONS = 100
FLOOD_PER_CLIENT = 20
FLOOD_STREAMS = 300

# The storm: this many channels stored, then pattern subscribers that stay, then a
# burst that connects and leaves at once.
STORM_CHANNELS = 3_000
STAYING_SUBSCRIBERS = 100
BURST_SUBSCRIBERS = 300
# Reads of streams each pattern subscriber may cause, whatever the number of channels:
# its catch-up, the one after the hub's subscription, and fetching the probe.
READS_PER_SUBSCRIBER = 5


def send_stream_request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def read_until(sock: socket.socket, marker: bytes, timeout_s: float) -> bytes:
    """What the socket sends up to and including ``marker``; fails after timeout_s."""
    received = b""
    deadline = time.monotonic() + timeout_s
    while marker not in received:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} within {timeout_s} s; got {received[:200]!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before {marker!r}; got {received[:200]!r}")
        received += chunk
    return received


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def timed(call: httpx.Client, method: str, url: str, **kwargs: object) -> tuple[int, float]:
    """Status and seconds taken; a timeout is status 0 at the client's timeout."""
    started = time.monotonic()
    try:
        status = call.request(method, url, **kwargs).status_code  # type: ignore[arg-type]
    except httpx.TimeoutException:
        status = 0
    return status, time.monotonic() - started


def web_cpu_s(web: Child) -> float:
    """CPU seconds used so far by the web's gunicorn master and workers."""
    assert web.process is not None
    master = psutil.Process(web.process.pid)
    total = 0.0
    for process in (master, *master.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def xrange_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


def append(client: redis.Redis, channel: str, data: object) -> str:
    message_id = channels.new_message_id()
    channel_log.append_and_publish(
        client, channel, message_id, channels.envelope(message_id, channel, data)
    )
    return message_id


@pytest.fixture
def redis_client(fault_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(fault_redis.url, decode_responses=True)
    yield client
    client.close()


def test_an_sse_flood_from_one_client_gets_429_past_its_share_while_the_api_answers_at_once(
    fault_redis: EmbeddedRedis, fault_worker: WorkerFactory, log_dir: Path
) -> None:
    fault_worker("tasks", concurrency=1)
    fault_worker("relay", concurrency=1)
    web, base_url = start_web(
        fault_redis.url,
        log_dir,
        env={
            "TASKRELAY_WEB_CONNECTIONS": str(FLOOD_WEB_CONNECTIONS),
            "TASKRELAY_SSE_MAX_STREAMS_PER_CLIENT": str(FLOOD_PER_CLIENT),
        },
    )
    port = int(base_url.rsplit(":", 1)[1])
    streams: list[socket.socket] = []
    try:
        flood = [
            send_stream_request(port, f"/api/channels/flood.{n % 10}/events")
            for n in range(FLOOD_STREAMS)
        ]
        heads = [read_until(sock, b"\r\n\r\n", timeout_s=30) for sock in flood]
        statuses = [head.split(b" ", 2)[1] for head in heads]
        refused = [head for head in heads if b" 429 " in head.split(b"\r\n", 1)[0]]
        streams = [sock for sock, status in zip(flood, statuses, strict=True) if status == b"200"]
        close_all([sock for sock, status in zip(flood, statuses, strict=True) if status != b"200"])
        print(f"[measure] flood of {FLOOD_STREAMS}: {len(streams)} streams, {len(refused)} 429")

        assert set(statuses) == {b"200", b"429"}
        # Each of the 2 web processes holds at most its share for the one client.
        assert FLOOD_PER_CLIENT <= len(streams) <= 2 * FLOOD_PER_CLIENT
        assert all(b"\r\nRetry-After: " in head for head in refused)

        with httpx.Client(base_url=base_url, timeout=5) as api:
            answers = [timed(api, "GET", "/readyz") for _ in range(5)]
            answers += [
                timed(api, "POST", "/api/tasks", json={"task": "consume", "args": [1]})
                for _ in range(5)
            ]
        print(f"[measure] API during the flood: {[round(s, 3) for _, s in answers]} s")
        assert [status for status, _ in answers] == [200] * 5 + [202] * 5
        assert max(seconds for _, seconds in answers) < API_BOUND_S

        # Streams the client closes give their slots back within seconds.
        close_all(streams)
        streams = []

        def admitted() -> bool:
            sock = send_stream_request(port, "/api/channels/flood.0/events")
            streams.append(sock)
            return b" 200 " in read_until(sock, b"\r\n", timeout_s=5)

        wait_until(admitted, timeout_s=QUIET_WITHIN_S, interval_s=0.5, what="a slot to come back")
    finally:
        close_all(streams)
        stop(web)


def test_a_pattern_storm_over_thousands_of_channels_reads_no_channel_and_ends_with_its_clients(
    fault_redis: EmbeddedRedis, redis_client: redis.Redis, log_dir: Path
) -> None:
    started = time.monotonic()
    for n in range(STORM_CHANNELS):
        append(redis_client, f"storm-{n:05d}", n)
    print(f"[measure] {STORM_CHANNELS} channels stored in {time.monotonic() - started:.1f} s")
    # The storm's own client may hold every stream it opens: this is about cost, not caps.
    web, base_url = start_web(
        fault_redis.url, log_dir, env={"TASKRELAY_SSE_MAX_STREAMS_PER_CLIENT": "1000"}
    )
    port = int(base_url.rsplit(":", 1)[1])
    staying: list[socket.socket] = []
    try:
        before = xrange_calls(redis_client)
        staying = [
            send_stream_request(port, "/api/events?pattern=*") for _ in range(STAYING_SUBSCRIBERS)
        ]
        for sock in staying:
            assert b" 200 " in read_until(sock, b"retry:", timeout_s=30).split(b"\r\n", 1)[0]
        probe = append(redis_client, "storm-00042", "probe")
        for sock in staying:
            read_until(sock, probe.encode(), timeout_s=20)
        reads = xrange_calls(redis_client) - before
        print(f"[measure] {STAYING_SUBSCRIBERS} pattern subscribers: {reads} stream reads")
        assert reads <= STAYING_SUBSCRIBERS * READS_PER_SUBSCRIBER

        burst = [
            send_stream_request(port, "/api/events?pattern=*") for _ in range(BURST_SUBSCRIBERS)
        ]
        close_all(burst)
        gone = time.monotonic()

        def quiet() -> bool:
            calls, cpu = xrange_calls(redis_client), web_cpu_s(web)
            time.sleep(1.0)  # the window over which "quiet" is measured
            more_calls = xrange_calls(redis_client) - calls
            more_cpu = web_cpu_s(web) - cpu
            return more_calls == 0 and more_cpu < IDLE_CPU_S_PER_S

        wait_until(quiet, timeout_s=QUIET_WITHIN_S, interval_s=0, what="the web to go quiet")
        print(f"[measure] quiet {time.monotonic() - gone:.1f} s after the burst left")
        # The departed streams have ended, not merely gone idle: only the staying count.
        wait_until(
            lambda: subscriber_counts(redis_client).get("pattern:*") == STAYING_SUBSCRIBERS,
            timeout_s=QUIET_WITHIN_S,
            what="the departed subscribers' streams to end",
        )
        print(f"[measure] every departed stream ended {time.monotonic() - gone:.1f} s after")

        # Nothing is pinned: a new subscriber is served at once and hears what follows.
        fresh = send_stream_request(port, "/api/events?pattern=*")
        staying.append(fresh)
        head = read_until(fresh, b"retry:", timeout_s=API_BOUND_S)
        assert b" 200 " in head.split(b"\r\n", 1)[0]
        after_storm = append(redis_client, "storm-00007", "after")
        read_until(fresh, after_storm.encode(), timeout_s=5)
    finally:
        close_all(staying)
        stop(web)
