"""The atomic fetch of taskrelay's Redis transport: the call to fetch.lua and its reply.

One script acknowledges what the consumer finished and moves the next messages from
their queue into kombu's in-flight records (the ``unacked`` hash and the
``unacked_index`` sorted set), so no message is ever off its queue without a record.
Each queue also has a wake key, a sorted set of one member, that producers set beside
every message and consumers block on (``BZPOPMIN``) while their queues are empty.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from tasks import defaults
from tasks import keys as keys_module
from tasks.names import TASK_NAME_PREFIX
from tasks.text import as_text

# The wake key of a queue sits beside its priority lists (kombu names them
# "<queue><sep><step>"), so it goes wherever the queue goes.
WAKE_SUFFIX = "wake"
# The one member of a wake key: setting it twice is the same as once.
WAKE_MEMBER = "1"
# Messages one fetch takes at most when the channel has no prefetch limit.
MAX_FETCH_BATCH = 64


@functools.cache
def script_source() -> str:
    return resources.files(__package__).joinpath("fetch.lua").read_text(encoding="utf-8")


def wake_key(queue: str, sep: str) -> str:
    return f"{queue}{sep}{WAKE_SUFFIX}"


@dataclass(frozen=True)
class FetchCall:
    """One call of the script: which queues it looked at, and the acks it carried."""

    queues: tuple[str, ...]
    acks: tuple[str, ...]
    keys: tuple[str, ...]
    args: tuple[str | int | float, ...]


def fetch_call(
    *,
    unacked_key: str,
    unacked_index_key: str,
    queues: Sequence[str],
    lists_by_step: Sequence[Sequence[str]],
    wake_keys: Sequence[str],
    now: float,
    limit: int,
    acks: Sequence[str],
    start_checks: bool = True,
) -> FetchCall:
    """The keys and arguments of fetch.lua, in the layout it documents.

    ``lists_by_step`` holds, for each priority step in kombu's order, the list of
    every queue (in ``queues`` order) at that step. With ``start_checks`` the script
    also makes the start check of each task it takes that has a record or is one of
    taskrelay's own (tasks/celery_ext/start_check.py).
    """
    lists = [name for step in lists_by_step for name in step]
    keys = (unacked_key, unacked_index_key, *wake_keys, *lists)
    record_prefix = keys_module.task_record("") if start_checks else ""
    args: tuple[str | int | float, ...] = (repr(now), max(limit, 1), len(queues), WAKE_MEMBER)
    args += (record_prefix, keys_module.REVOKED, TASK_NAME_PREFIX, defaults.TASK_RECORD_TTL_S)
    args += tuple(acks)
    return FetchCall(tuple(queues), tuple(acks), keys, args)


@dataclass(frozen=True)
class FetchedMessage:
    queue: str
    raw: str
    # fetch.lua's start check (tasks/celery_ext/start_check.py), or '' for none.
    start_check: str


@dataclass(frozen=True)
class FetchReply:
    # True when a queue still held messages after this fetch.
    more: bool
    # In the order they were taken.
    messages: list[FetchedMessage]


def parse_reply(call: FetchCall, reply: Sequence[object]) -> FetchReply:
    items = list(reply)
    messages = [
        FetchedMessage(
            call.queues[int(str(items[i])) - 1], as_text(items[i + 1]), as_text(items[i + 2])
        )
        for i in range(1, len(items), 3)
    ]
    return FetchReply(more=int(str(items[0])) == 1, messages=messages)
