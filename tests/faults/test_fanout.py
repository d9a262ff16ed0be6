"""Fan-out under faults: Redis restarted under live subscribers, the relay worker killed.

Each test runs its own Redis (and its own workers and web), so killing or
restarting them disturbs no other test.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tests.e2e.fanout_support import TerminalSubscriber, fresh_channel, publish
from tests.sse_reader import SseReader, http_lines
from tests.support import decoded_client, running_redis, start_web, start_worker, stop, wait_until
from webapp.channels.metrics import subscriber_counts

# Short enough that a killed relay worker's messages come back within seconds.
FAULT_VISIBILITY_TIMEOUT_S = "6"
FAULT_SWEEP_AFTER_S = "10"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def own_redis_client(own_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    with decoded_client(own_redis.url) as client:
        yield client


def test_redis_restarted_under_live_subscribers_loses_and_repeats_nothing(
    own_redis: EmbeddedRedis, own_redis_client: redis.Redis, log_dir: Path, tmp_path: Path
) -> None:
    relay = start_worker("relay", own_redis.url, log_dir, concurrency=1)
    web, base_url = start_web(own_redis.url, log_dir)
    channel = fresh_channel("restart")
    sse_client, lines = http_lines(base_url, f"/api/channels/{channel}/events")
    reader = SseReader(lines)
    terminal = TerminalSubscriber(["--json", channel], own_redis.url, tmp_path / "subscriber.log")
    http = httpx.Client(base_url=base_url, timeout=10)
    try:
        terminal.wait_subscribed()
        wait_until(
            lambda: subscriber_counts(own_redis_client).get(channel) == 1,
            what="the SSE subscriber",
        )
        ids = [publish(http, channel, n) for n in range(20)]
        assert [m["id"] for m in reader.messages(20)] == ids
        assert [json.loads(line)["id"] for line in terminal.take(20)] == ids

        own_redis.restart()  # graceful: the append-only file keeps every message

        more = [publish(http, channel, n) for n in range(20, 40)]
        assert [m["id"] for m in reader.messages(20, timeout_s=90)] == more
        assert [json.loads(line)["id"] for line in terminal.take(20, timeout_s=90)] == more
        assert terminal.lines.empty()
    finally:
        http.close()
        sse_client.close()
        terminal.stop()
        stop(web)
        stop(relay)


def test_a_relay_worker_killed_while_relaying_loses_and_repeats_nothing(
    own_redis: EmbeddedRedis, own_redis_client: redis.Redis, log_dir: Path
) -> None:
    env = {
        "TASKRELAY_VISIBILITY_TIMEOUT": FAULT_VISIBILITY_TIMEOUT_S,
        # kombu can lose a message popped by a worker killed before it recorded
        # it as unacknowledged; the sweeper relays such messages after this long.
        "TASKRELAY_RELAY_SWEEP_AFTER_S": FAULT_SWEEP_AFTER_S,
    }
    doomed = start_worker("relay", own_redis.url, log_dir, concurrency=1, env=env)
    channel = fresh_channel("kill")
    heard: Counter[str] = Counter()
    listening = threading.Event()
    done = threading.Event()

    def listen() -> None:
        pubsub = own_redis_client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.channel_pubsub(channel))
        listening.set()
        while not done.is_set():
            message = pubsub.get_message(timeout=0.2)
            if message is not None:
                heard[json.loads(message["data"])["message"]["id"]] += 1
        pubsub.close()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    listening.wait(10)
    web, base_url = start_web(own_redis.url, log_dir)
    http = httpx.Client(base_url=base_url, timeout=10)
    survivor = None
    try:
        ids = [publish(http, channel, n) for n in range(300)]
        stream = keys.channel_stream(channel)
        wait_until(lambda: own_redis_client.xlen(stream) >= 30, what="relaying to start")
        assert doomed.process is not None
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=10)
        survivor = start_worker("relay", own_redis.url, log_dir, concurrency=1, env=env)

        def settled() -> bool:
            return (
                own_redis_client.xlen(stream) >= len(ids)
                and own_redis_client.llen("relay") == 0
                and own_redis_client.hlen("unacked") == 0
                and own_redis_client.zcard(keys.RELAY_PENDING_INDEX) == 0
            )

        try:
            wait_until(settled, timeout_s=120, what="every message to be relayed and acknowledged")
        except AssertionError:
            raise AssertionError(
                f"stream {own_redis_client.xlen(stream)} of {len(ids)}, "
                f"queued {own_redis_client.llen('relay')}, "
                f"unacked {own_redis_client.hlen('unacked')}"
            ) from None
        retained = [fields["id"] for _, fields in own_redis_client.xrange(stream)]
        assert sorted(retained) == sorted(ids)
        wait_until(lambda: set(heard) == set(ids), what="every message to be heard")
        assert max(heard.values()) == 1, [i for i, n in heard.items() if n > 1]
    finally:
        done.set()
        listener.join(10)
        http.close()
        stop(web)
        if survivor is not None:
            stop(survivor)
        stop(doomed)
