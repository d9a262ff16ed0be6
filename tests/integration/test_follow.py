"""The terminal subscriber (taskrelay.follow) on a real Redis: when redis-py's pub/sub
reconnects and subscribes again by itself, what was published while it was away still
arrives, from the stream, once and in order.

The follower is a generator: while the test does not pull it, it reads nothing, so its
connection can be closed and messages published in between, deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskrelay.follow import Follower
from tasks import channels
from tasks.channels import Delivery, log
from tests.support import decoded_client, running_redis

PULL_TIMEOUT_S = 10.0


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    # A Redis of its own: the test closes every pub/sub connection the server has.
    with running_redis(tmp_path / "redis") as server:
        yield server.url


def _publish(client: redis.Redis, channel: str, data: int) -> str:
    message_id = channels.new_message_id()
    log.append_and_publish(
        client, channel, message_id, channels.envelope(message_id, channel, data)
    )
    return message_id


def _pull(messages: Iterator[object], follower: Follower, count: int) -> list[str]:
    """The ids of the next ``count`` deliveries; stops the follower if they do not come."""
    timer = threading.Timer(PULL_TIMEOUT_S, follower.stop)
    timer.start()
    try:
        found = []
        for item in messages:
            assert isinstance(item, Delivery)
            found.append(item.message_id)
            if len(found) == count:
                break
        return found
    finally:
        timer.cancel()


def test_messages_published_while_pubsub_reconnected_on_its_own_arrive_from_the_stream(
    url: str,
) -> None:
    channel = "follow.silent"
    with decoded_client(url) as client:
        first: list[str] = []
        # A follower starts at the stream's end: the first message goes once it listens.
        follower = Follower(
            url, channel=channel, on_subscribed=lambda: first.append(_publish(client, channel, 0))
        )
        messages = follower.messages()
        assert _pull(messages, follower, 1) == first
        # The server drops the subscription while the follower reads nothing; its next
        # read fails, and redis-py reconnects and subscribes again within that read.
        client.client_kill_filter(_type="pubsub")
        missed = [_publish(client, channel, n) for n in range(1, 6)]

        arrived = _pull(messages, follower, len(missed))

    follower.stop()
    assert arrived == missed
