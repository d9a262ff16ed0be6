"""Per-channel figures: published, delivered, dropped, subscribers.

Each web process counts deliveries and drops in memory and adds them to Redis
hashes on its hub's beat, beside its subscriber counts; the relay script counts
what it published. So any process can report the whole cluster (``cluster()``),
as GET /metrics does for tasks; ``snapshot()`` is this process's own share.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from tasks import keys
from tasks.text import as_text

# A hub's subscriber counts expire this long after its last beat, in seconds.
BEAT_TTL_S = 10


@dataclass(frozen=True)
class ChannelCounts:
    published: int = 0  # relayed to subscribers (cluster) / accepted here (process)
    delivered: int = 0  # written to SSE clients
    dropped: int = 0  # not delivered live: a client's buffer was full, it was cut off
    subscribers: int = 0  # SSE clients hearing the channel (`pattern:<p>` for patterns)


class ChannelMetrics:
    """This process's counters; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._published: Counter[str] = Counter()
        self._delivered: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._subscribers: Counter[str] = Counter()
        # Not yet added to Redis.
        self._pending_delivered: Counter[str] = Counter()
        self._pending_dropped: Counter[str] = Counter()

    def published(self, channel: str) -> None:
        with self._lock:
            self._published[channel] += 1

    def delivered(self, channel: str, count: int = 1) -> None:
        with self._lock:
            self._delivered[channel] += count
            self._pending_delivered[channel] += count

    def dropped(self, channel: str) -> None:
        with self._lock:
            self._dropped[channel] += 1
            self._pending_dropped[channel] += 1

    def subscribed(self, label: str, change: int) -> None:
        with self._lock:
            self._subscribers[label] += change
            if self._subscribers[label] <= 0:
                del self._subscribers[label]

    def snapshot(self) -> dict[str, ChannelCounts]:
        with self._lock:
            names = set(self._published) | set(self._delivered) | set(self._dropped)
            names |= set(self._subscribers)
            return {
                name: ChannelCounts(
                    published=self._published[name],
                    delivered=self._delivered[name],
                    dropped=self._dropped[name],
                    subscribers=self._subscribers[name],
                )
                for name in names
            }

    def beat(self, pipe: Pipeline, hub_id: str, subscribers: dict[str, int]) -> None:
        """Queue this process's news for Redis on a pipeline: subscribers and new counts."""
        with self._lock:
            delivered, self._pending_delivered = self._pending_delivered, Counter()
            dropped, self._pending_dropped = self._pending_dropped, Counter()
        for channel, count in delivered.items():
            pipe.hincrby(keys.METRICS_CHANNEL_DELIVERED, channel, count)
        for channel, count in dropped.items():
            pipe.hincrby(keys.METRICS_CHANNEL_DROPPED, channel, count)
        key = keys.hub_subscribers(hub_id)
        pipe.delete(key)
        if subscribers:
            pipe.hset(key, mapping=subscribers)  # type: ignore[arg-type]
        pipe.expire(key, BEAT_TTL_S)
        now = time.time()
        pipe.zadd(keys.HUB_INDEX, {hub_id: now})
        pipe.zremrangebyscore(keys.HUB_INDEX, 0, now - BEAT_TTL_S)


def subscriber_counts(client: redis.Redis) -> dict[str, int]:
    """SSE subscribers of every live web process, by channel or `pattern:<text>`."""
    hubs = client.zrangebyscore(keys.HUB_INDEX, time.time() - BEAT_TTL_S, "+inf")
    with client.pipeline(transaction=False) as pipe:
        for hub_id in hubs:
            pipe.hgetall(keys.hub_subscribers(as_text(hub_id)))
        replies = pipe.execute()
    total: Counter[str] = Counter()
    for reply in replies:
        for label, count in reply.items():
            total[as_text(label)] += int(count)
    return dict(total)


def cluster(client: redis.Redis) -> dict[str, ChannelCounts]:
    """The whole cluster's figures, by channel (and by `pattern:<text>` for subscribers)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS_CHANNEL_PUBLISHED)
        pipe.hgetall(keys.METRICS_CHANNEL_DELIVERED)
        pipe.hgetall(keys.METRICS_CHANNEL_DROPPED)
        published, delivered, dropped = (
            {as_text(k): int(v) for k, v in reply.items()} for reply in pipe.execute()
        )
    subscribers = subscriber_counts(client)
    names = set(published) | set(delivered) | set(dropped) | set(subscribers)
    return {
        name: ChannelCounts(
            published=published.get(name, 0),
            delivered=delivered.get(name, 0),
            dropped=dropped.get(name, 0),
            subscribers=subscribers.get(name, 0),
        )
        for name in sorted(names)
    }


# This process's counters.
METRICS = ChannelMetrics()
