"""Transactions ready together run as one MULTI/EXEC, each sender with its own replies."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from taskrelay.waiting import free_port
from tasks import group_commit
from tests.support import command_calls, wait_until

# Keeps Redis inside one transaction long enough for others to gather behind it.
BUSY_LUA = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= tonumber(ARGV[1])
return 1
"""
BUSY_US = 300_000
# Well inside BUSY_US, so that the gathering is seen while the busy one runs.
POLL_S = 0.005
JOIN_TIMEOUT_S = 10.0


class _Sender(threading.Thread):
    """Runs one pipeline through the group; keeps its replies or what it raised."""

    def __init__(self, group: group_commit.GroupCommit, pipeline: Any) -> None:
        super().__init__(daemon=True)
        self.group = group
        self.pipeline = pipeline
        self.replies: list[Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.replies = self.group.execute(self.pipeline)
        except BaseException as error:  # the test reads it
            self.error = error


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


def _behind_a_busy_one(
    client: redis.Redis,
    group: group_commit.GroupCommit,
    fill: list[Callable[[Any], None]],
    *,
    transaction: bool = True,
) -> tuple[_Sender, list[_Sender]]:
    """A pipeline that keeps Redis busy, and one sender per ``fill`` gathered behind it."""
    busy = client.pipeline(transaction=transaction)
    busy.eval(BUSY_LUA, 0, BUSY_US)
    first = _Sender(group, busy)
    first.start()
    wait_until(lambda: group._on_the_wire, interval_s=POLL_S, what="the busy one on the wire")
    senders = []
    for queue_commands in fill:
        pipeline = client.pipeline(transaction=transaction)
        queue_commands(pipeline)
        senders.append(_Sender(group, pipeline))
    for sender in senders:
        sender.start()
    # All of them wait while the busy one is on the wire: they go together after it.
    wait_until(
        lambda: len(group._waiting) == len(senders), interval_s=POLL_S, what="the senders to gather"
    )
    assert first.replies is None
    for sender in [first, *senders]:
        sender.join(JOIN_TIMEOUT_S)
        assert not sender.is_alive()
    return first, senders


@pytest.mark.parametrize("transaction", [True, False], ids=["multi-exec", "pipeline"])
def test_pipelines_ready_together_share_one_round_trip(
    client: redis.Redis, transaction: bool
) -> None:
    group = group_commit.GroupCommit()
    client.delete("gc:a", "gc:b", "gc:c")
    before = command_calls(client, "multi")

    first, senders = _behind_a_busy_one(
        client,
        group,
        [
            lambda pipe: pipe.incr("gc:a").incr("gc:a"),
            lambda pipe: pipe.set("gc:b", "x").get("gc:b"),
            lambda pipe: pipe.rpush("gc:c", 1, 2, 3),
        ],
        transaction=transaction,
    )

    assert first.replies == [1]
    assert [s.replies for s in senders] == [[1, 2], [True, "x"], [3]]
    # The busy one alone, then the three that gathered behind it, together.
    assert command_calls(client, "multi") - before == (2 if transaction else 0)
    assert not group._on_the_wire


def test_a_failing_command_fails_only_its_own_sender(client: redis.Redis) -> None:
    group = group_commit.GroupCommit()
    client.set("gc:text", "not a number")
    client.delete("gc:n")

    _, (failing, passing) = _behind_a_busy_one(
        client,
        group,
        [lambda pipe: pipe.incr("gc:text"), lambda pipe: pipe.incr("gc:n")],
    )

    assert isinstance(failing.error, ResponseError)
    assert passing.error is None and passing.replies == [1]
    assert client.get("gc:n") == "1"


def test_an_unreachable_redis_is_reported_as_nothing_sent() -> None:
    group = group_commit.GroupCommit()
    with redis.Redis(port=free_port(), socket_connect_timeout=1) as unreachable:
        pipeline = unreachable.pipeline(transaction=True)
        pipeline.set("gc:never", 1)

        with pytest.raises(group_commit.NothingSent):
            group.execute(pipeline)

    assert not group._on_the_wire  # the next sender leads again


def test_a_pipeline_on_a_connection_of_its_own_runs_alone(client: redis.Redis) -> None:
    group = group_commit.GroupCommit()
    pipeline = client.pipeline(transaction=True)
    pipeline.connection = client.connection_pool.get_connection()
    pipeline.set("gc:own", "y")

    assert group.execute(pipeline) == [True]
    assert not group._waiting and not group._on_the_wire


def test_pools_of_one_server_share_a_group_for_each_kind(redis_url: str) -> None:
    with (
        redis.Redis.from_url(redis_url) as one,
        redis.Redis.from_url(redis_url) as other,
        redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5") as other_db,
    ):
        group = group_commit.group_for(one.pipeline())
        assert group_commit.group_for(other.pipeline()) is group
        assert group_commit.group_for(other.pipeline(transaction=False)) is not group
        assert group_commit.group_for(other_db.pipeline()) is not group
