"""Reading channels for the API: pages of the list with subscriber counts, and the history."""

from __future__ import annotations

import json
from typing import Any

import redis

from tasks import channels
from tasks.channels import Position
from tasks.channels import index as channel_index
from tasks.channels import log as channel_log
from webapp.channels.metrics import subscriber_counts

# Most messages one history read answers, and how many when not asked.
HISTORY_MAX = 1_000
HISTORY_DEFAULT = 100


def history(client: redis.Redis, channel: str, after: str | None, limit: int) -> dict[str, Any]:
    """Retained messages, oldest first; `gap` when `after` is no longer retained."""
    start: Position = channels.START
    gap = False
    if after is not None:
        position = channel_log.position_of(client, channel, after)
        gap = position is None
        start = position or channels.START
    deliveries = list(channel_log.read_after(client, channel, start, limit=limit))
    return {
        "channel": channel,
        "messages": [json.loads(d.envelope_json) for d in deliveries],
        "gap": gap,
    }


def listing(client: redis.Redis, *, after: str | None, limit: int, now_s: float) -> dict[str, Any]:
    """A page of live channels in name order, and the cursor of the next page (or None)."""
    page = channel_index.page(client, after=after, limit=limit, now_s=now_s)
    counts = subscriber_counts(client)
    patterns = [
        (channels.parse_pattern(label.removeprefix("pattern:")), n)
        for label, n in counts.items()
        if label.startswith("pattern:")
    ]
    return {
        "channels": [
            {
                "name": summary.name,
                "length": summary.length,
                "last_id": summary.last_id,
                "subscribers": counts.get(summary.name, 0)
                + sum(n for pattern, n in patterns if pattern.matches(summary.name)),
            }
            for summary in channel_log.summaries(client, page.names)
        ],
        "next_cursor": page.next_cursor,
    }
