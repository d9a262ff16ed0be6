"""K subscribers in a process of their own, so their parsing never slows the publisher.

``python -m taskrelay.bench.subscribers sse|redis TARGET CHANNEL K MESSAGES DEADLINE_S``
connects K subscribers (SSE clients of taskrelay's web at TARGET, or raw redis-py
subscribers of the Redis at TARGET), prints ``connected``, then ``ready`` once every
subscriber has received a warm-up message (negative ``seq``), and finally one line
of JSON: deliveries, distinct messages and publish-to-receive latencies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from taskrelay.bench.stats import percentile

CONNECT_TIMEOUT_S = 10.0
READ_SIZE = 65536


@dataclass
class Inbox:
    """What one subscriber received of the measured messages."""

    seqs: set[int] = field(default_factory=set)
    deliveries: int = 0
    warmed: bool = False


@dataclass
class Tally:
    expected: int
    inboxes: list[Inbox]
    latencies: list[float] = field(default_factory=list)
    first_sent: float = float("inf")
    last_received: float = 0.0
    all_warm: asyncio.Event = field(default_factory=asyncio.Event)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, inbox: Inbox, payload: dict[str, Any]) -> None:
        now = time.time()
        seq = int(payload["seq"])
        if seq < 0:
            if not inbox.warmed:
                inbox.warmed = True
                if all(box.warmed for box in self.inboxes):
                    self.all_warm.set()
            return
        inbox.deliveries += 1
        inbox.seqs.add(seq)
        self.latencies.append(now - float(payload["sent_at"]))
        self.first_sent = min(self.first_sent, float(payload["sent_at"]))
        self.last_received = now
        if len(inbox.seqs) >= self.expected and all(
            len(box.seqs) >= self.expected for box in self.inboxes
        ):
            self.all_done.set()

    def summary(self) -> dict[str, Any]:
        return {
            "subscribers": len(self.inboxes),
            "deliveries": sum(box.deliveries for box in self.inboxes),
            "distinct": sum(len(box.seqs) for box in self.inboxes),
            "p50_s": percentile(self.latencies, 0.5),
            "p99_s": percentile(self.latencies, 0.99),
            "window_s": max(0.0, self.last_received - self.first_sent),
        }


async def sse_subscriber(base: str, channel: str, inbox: Inbox, tally: Tally) -> None:
    host, _, port = base.removeprefix("http://").partition(":")
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT_S
    )
    # HTTP/1.0: the stream comes unchunked and ends when the server closes it.
    writer.write(
        f"GET /api/channels/{channel}/events HTTP/1.0\r\nHost: {base}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    try:
        await reader.readuntil(b"\r\n\r\n")
        # What has arrived is read at once and cut into events (an empty line ends
        # each): a hundred clients in one process, read line by line, spent more
        # of the machine's two cores than the server's whole delivery path.
        unfinished = b""
        while chunk := await reader.read(READ_SIZE):
            *events, unfinished = (unfinished + chunk).split(b"\n\n")
            for event in events:
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        tally.take(inbox, json.loads(line[6:])["data"])
    finally:
        writer.close()


async def redis_subscriber(url: str, channel: str, inbox: Inbox, tally: Tally) -> None:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        async for message in pubsub.listen():
            if message["type"] == "message":
                tally.take(inbox, json.loads(message["data"]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await client.aclose()


async def main(
    kind: str, target: str, channel: str, count: int, messages: int, deadline_s: float
) -> None:
    tally = Tally(messages, [Inbox() for _ in range(count)])
    subscribe = sse_subscriber if kind == "sse" else redis_subscriber
    tasks = [asyncio.create_task(subscribe(target, channel, box, tally)) for box in tally.inboxes]
    print("connected", flush=True)
    try:
        await asyncio.wait_for(tally.all_warm.wait(), deadline_s)
        print("ready", flush=True)
        await asyncio.wait_for(tally.all_done.wait(), deadline_s)
    except TimeoutError:
        pass  # the summary shows what was lost
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(tally.summary()), flush=True)


if __name__ == "__main__":
    kind, target, channel, count, messages, deadline = sys.argv[1:7]
    asyncio.run(main(kind, target, channel, int(count), int(messages), float(deadline)))
