"""The hiredis packer writes redis-py's own bytes, and leaves the rest to redis-py."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from redis.connection import Connection
from redis.exceptions import DataError

from tasks.redis_packing import PACKER, packer_for


class Level(enum.IntEnum):
    HIGH = 9


def redis_pys_own(*args: Any) -> list[bytes]:
    """What redis-py packs for a connection made without a packer of ours."""
    packed: list[bytes] = Connection()._command_packer.pack(*args)
    return packed


@pytest.mark.parametrize(
    "args",
    [
        ("PING",),
        ("SET", "key", "value"),
        ("SET", "clé", "héllo ☃ \U0001f600"),
        ("SET", b"key", b"\x00\xff\r\n"),
        ("SET", "key", ""),
        ("INCRBY", "counter", 7),
        ("INCRBY", "counter", -(10**30)),
        ("ZADD", "index", 1796565280.076822, "task-id"),
        ("ZADD", "index", -0.0, "a", float("inf"), "b", 1e300, "c"),
        ("EVALSHA", "0" * 40, 0, "taskrelay:key", '{"state":"QUEUED"}'),
        ("LPUSH", "queue", "x" * 100_000),
        ("CLIENT SETNAME", "web"),
        ("SET", "key", bytearray(b"bytes")),
        ("SET", "key", memoryview(b"viewed")),
        ("SET", "key", Level.HIGH),
        (b"SET", "key", "value"),
        ("JSON.SET", "key", "$", "1"),
    ],
)
def test_packs_the_bytes_redis_py_packs(args: tuple[Any, ...]) -> None:
    assert b"".join(PACKER.pack(*args)) == b"".join(redis_pys_own(*args))


def test_refuses_what_redis_py_refuses() -> None:
    with pytest.raises(DataError, match="bool"):
        PACKER.pack("SET", "key", True)
    with pytest.raises(DataError, match="NoneType"):
        PACKER.pack("SET", "key", None)
    with pytest.raises(UnicodeEncodeError):
        PACKER.pack("SET", "key", "\ud800")


def test_is_offered_only_to_connections_that_encode_as_utf8_strictly() -> None:
    assert packer_for({}) == {"command_packer": PACKER}
    assert packer_for({"encoding": "UTF_8", "decode_responses": True}) == {"command_packer": PACKER}
    assert packer_for({"encoding": "latin-1"}) == {}
    assert packer_for({"encoding_errors": "replace"}) == {}
