"""Every channel bound holds: message size, the number of channels, idle expiry, retention in
bytes, pages of the channel list, stream slots, and pattern catch-up at a cost independent of
the number of channels.

Each test runs against its own Redis, through the Flask app or the channel log itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import channels, keys
from tasks.channels import bounds, cursor, recent
from tasks.channels import log as channel_log
from tests.faults.conftest import WorkerFactory
from tests.support import command_calls, wait_until
from webapp import create_app

# How many channels the "many channels" tests store: enough that one read per
# channel would show at once, small enough to fill in about a second.
MANY_CHANNELS = 2_000

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(fault_redis: EmbeddedRedis) -> Iterator[AppFactory]:
    """Apps on the test's Redis with settings of the test's choosing; all closed at the end."""
    made: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = create_app({"TESTING": True, "REDIS_URL": fault_redis.url, **config})
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["taskrelay"].close()


def append(client: redis.Redis, channel: str, data: Any, **retention: Any) -> str:
    """Relay one message as the relay task does; returns its id."""
    message_id = channels.new_message_id()
    envelope = channels.envelope(message_id, channel, data)
    channel_log.append_and_publish(client, channel, message_id, envelope, **retention)
    return message_id


def store_many_channels(client: redis.Redis, count: int, prefix: str) -> list[str]:
    names = [f"{prefix}.{n:05d}" for n in range(count)]
    for name in names:
        append(client, name, 1)
    return names


def xrange_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


# -- message size ------------------------------------------------------------------------


def test_a_message_over_the_size_limit_is_413_naming_the_limit_and_one_at_it_is_accepted(
    make_app: AppFactory,
) -> None:
    client = make_app().test_client()
    limit = bounds.DEFAULT_MESSAGE_MAX_BYTES
    at_limit = "x" * (limit - 2)  # the JSON string's quotes count
    assert bounds.data_bytes(at_limit) == limit
    over = at_limit + "x"

    refused = client.post("/api/channels/big/messages", json={"data": over})

    assert refused.status_code == 413
    error = refused.get_json()["error"]
    assert error["code"] == "payload_too_large" and error["field"] == "data"
    assert str(limit) in error["message"] and str(limit + 1) in error["message"]
    assert client.post("/api/channels/big/messages", json={"data": at_limit}).status_code == 202


def test_the_message_size_limit_is_a_setting(make_app: AppFactory) -> None:
    client = make_app(CHANNEL_MESSAGE_MAX_BYTES=100).test_client()
    assert client.post("/api/channels/s/messages", json={"data": "x" * 98}).status_code == 202
    assert client.post("/api/channels/s/messages", json={"data": "x" * 99}).status_code == 413


# -- the number of channels --------------------------------------------------------------


def test_past_the_channel_cap_a_new_name_is_409_while_known_names_are_still_taken(
    make_app: AppFactory, fault_redis_client: redis.Redis
) -> None:
    client = make_app(CHANNEL_MAX_CHANNELS=3).test_client()
    for name in ("cap.a", "cap.b", "cap.c"):
        assert client.post(f"/api/channels/{name}/messages", json={"data": 1}).status_code == 202

    refused = client.post("/api/channels/cap.d/messages", json={"data": 1})

    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "too_many_channels" and error["field"] == "channel"
    assert "3 channels" in error["message"]
    assert client.post("/api/channels/cap.a/messages", json={"data": 2}).status_code == 202
    assert fault_redis_client.zcard(keys.CHANNEL_EXPIRY) == 3
    # Nothing of the refused message was kept for the relay.
    pending = fault_redis_client.hvals(keys.RELAY_PENDING)
    assert all(json.loads(raw)["channel"] != "cap.d" for raw in pending)


def test_concurrent_new_names_never_overshoot_the_channel_cap(
    make_app: AppFactory, fault_redis_client: redis.Redis
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    app = make_app(CHANNEL_MAX_CHANNELS=10)

    def publish(n: int) -> int:
        response = app.test_client().post(f"/api/channels/race.{n}/messages", json={"data": n})
        return int(response.status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(publish, range(40)))

    assert statuses.count(202) == 10 and statuses.count(409) == 30
    assert fault_redis_client.zcard(keys.CHANNEL_EXPIRY) == 10


def test_channels_idle_past_their_ttl_make_room_under_the_cap(make_app: AppFactory) -> None:
    # Long enough that a loaded machine still refuses the third name before the first two
    # expire; short enough to wait for.
    client = make_app(CHANNEL_MAX_CHANNELS=2, CHANNEL_IDLE_TTL_S=3).test_client()
    for name in ("idle.a", "idle.b"):
        assert client.post(f"/api/channels/{name}/messages", json={"data": 1}).status_code == 202
    assert client.post("/api/channels/idle.c/messages", json={"data": 1}).status_code == 409

    wait_until(
        lambda: client.post("/api/channels/idle.c/messages", json={"data": 1}).status_code == 202,
        timeout_s=15,
        interval_s=0.2,
        what="the idle channels to expire and make room",
    )
    listed = {c["name"] for c in client.get("/api/channels").get_json()["channels"]}
    # The oldest expired first and made the room; the second may or may not have yet.
    assert "idle.c" in listed and "idle.a" not in listed


def publish_commands(
    client: Any, redis_client: redis.Redis, channel: str, data: Any
) -> dict[str, int]:
    """The Redis commands one publish ran, by name (this test's Redis runs nothing else)."""
    counted = ("evalsha", "eval", "multi", "exec", "lpush", "hset", "zadd")
    before = {name: command_calls(redis_client, name) for name in counted}
    assert client.post(f"/api/channels/{channel}/messages", json={"data": data}).status_code == 202
    after = {name: command_calls(redis_client, name) for name in counted}
    return {name: after[name] - before[name] for name in counted}


def test_a_channel_admitted_moments_ago_takes_its_pending_record_in_the_relay_tasks_transaction(
    make_app: AppFactory, fault_redis_client: redis.Redis
) -> None:
    client = make_app().test_client()
    publish_commands(client, fault_redis_client, "known.warm", 0)  # Redis learns the script
    first = publish_commands(client, fault_redis_client, "known.a", 1)
    # The first publish to a name: the cap's script (which records it as pending), then
    # the relay task's MULTI/EXEC.
    assert first["evalsha"] + first["eval"] == 1 and first["exec"] == 1

    second = publish_commands(client, fault_redis_client, "known.a", 2)

    # The second: one MULTI/EXEC holding the relay task (LPUSH, and a ZADD of its queue's
    # wake key) and the pending record (HSET, ZADD), and no script.
    assert second == {
        "evalsha": 0,
        "eval": 0,
        "multi": 1,
        "exec": 1,
        "lpush": 1,
        "hset": 1,
        "zadd": 2,
    }
    pending = [json.loads(raw) for raw in fault_redis_client.hvals(keys.RELAY_PENDING)]
    assert sorted(message["data"] for message in pending if message["channel"] == "known.a") == [
        1,
        2,
    ]


def test_a_channel_near_its_idle_expiry_is_checked_against_the_cap_on_every_publish(
    make_app: AppFactory, fault_redis_client: redis.Redis
) -> None:
    # An idle time to live shorter than the margin kept before a name's expiry.
    client = make_app(CHANNEL_IDLE_TTL_S=20).test_client()
    publish_commands(client, fault_redis_client, "near.warm", 0)  # Redis learns the script
    publish_commands(client, fault_redis_client, "near.expiry", 1)

    second = publish_commands(client, fault_redis_client, "near.expiry", 2)

    assert second["evalsha"] + second["eval"] == 1


# -- idle expiry -------------------------------------------------------------------------


def channel_keys(channel: str) -> list[str]:
    return [
        keys.channel_stream(channel),
        keys.channel_positions(channel),
        keys.channel_bytes(channel),
    ]


def test_a_channel_relayed_over_http_carries_the_default_idle_ttl_on_every_key(
    make_app: AppFactory, fault_worker: WorkerFactory, fault_redis_client: redis.Redis
) -> None:
    fault_worker("relay", concurrency=1)
    client = make_app().test_client()
    channel = "ttl.default"
    assert client.post(f"/api/channels/{channel}/messages", json={"data": 1}).status_code == 202
    wait_until(lambda: fault_redis_client.xlen(keys.channel_stream(channel)) == 1, what="the relay")

    for key in channel_keys(channel):
        ttl = fault_redis_client.ttl(key)
        assert bounds.DEFAULT_IDLE_TTL_S - 60 < ttl <= bounds.DEFAULT_IDLE_TTL_S, (key, ttl)


def test_a_publish_refreshes_the_idle_ttl_and_an_idle_channel_is_gone(
    fault_redis_client: redis.Redis,
) -> None:
    channel = "ttl.refresh"
    append(fault_redis_client, channel, 1, idle_ttl_s=600)
    for key in channel_keys(channel):
        fault_redis_client.expire(key, 5)

    append(fault_redis_client, channel, 2, idle_ttl_s=600)

    for key in channel_keys(channel):
        assert 590 < fault_redis_client.ttl(key) <= 600, key

    append(fault_redis_client, channel, 3, idle_ttl_s=1)
    wait_until(
        lambda: not any(fault_redis_client.exists(key) for key in channel_keys(channel)),
        timeout_s=5,
        what="the idle channel's keys to expire",
    )
    # The next publish anywhere takes it out of the index and its counters.
    append(fault_redis_client, "ttl.other", 1)
    assert fault_redis_client.zscore(keys.CHANNEL_EXPIRY, channel) is None
    assert fault_redis_client.zscore(keys.CHANNEL_NAMES, channel) is None
    assert fault_redis_client.hget(keys.METRICS_CHANNEL_PUBLISHED, channel) is None


# -- retention in bytes ------------------------------------------------------------------


def test_retention_in_bytes_trims_the_oldest_messages_and_their_index(
    fault_redis_client: redis.Redis,
) -> None:
    channel = "bytes.trim"
    ids = [
        append(fault_redis_client, channel, "x" * 1000, retention_bytes=5_000) for _ in range(20)
    ]

    entries = fault_redis_client.xrange(keys.channel_stream(channel))
    held = sum(len(fields["message"]) for _, fields in entries)
    assert held <= 5_000 and len(entries) == held // len(entries[0][1]["message"])
    assert [fields["id"] for _, fields in entries] == ids[-len(entries) :]
    assert len(entries) >= 4  # only what had to go went
    assert int(fault_redis_client.get(keys.channel_bytes(channel)) or 0) == held
    assert sorted(fault_redis_client.hkeys(keys.channel_positions(channel))) == sorted(
        ids[-len(entries) :]
    )


def test_a_message_larger_than_the_byte_retention_leaves_only_itself(
    fault_redis_client: redis.Redis,
) -> None:
    channel = "bytes.one"
    for _ in range(5):
        append(fault_redis_client, channel, "small", retention_bytes=2_000)
    newest = append(fault_redis_client, channel, "y" * 3_000, retention_bytes=2_000)

    entries = fault_redis_client.xrange(keys.channel_stream(channel))
    assert [fields["id"] for _, fields in entries] == [newest]
    assert int(fault_redis_client.get(keys.channel_bytes(channel)) or 0) == len(
        entries[0][1]["message"]
    )


# -- the channel list --------------------------------------------------------------------


def test_the_channel_list_pages_in_name_order_with_a_cursor(
    make_app: AppFactory, fault_redis_client: redis.Redis
) -> None:
    names = sorted(f"page.{uuid.uuid4().hex[:6]}" for _ in range(25))
    for name in names:
        append(fault_redis_client, name, 1)
    client = make_app().test_client()

    seen: list[str] = []
    pages = 0
    query: dict[str, Any] = {"limit": 10}
    while True:
        page = client.get("/api/channels", query_string=query).get_json()
        pages += 1
        assert len(page["channels"]) <= 10
        seen += [c["name"] for c in page["channels"]]
        if page["next_cursor"] is None:
            break
        query = {"limit": 10, "cursor": page["next_cursor"]}

    assert seen == names and pages == 3
    first = client.get("/api/channels").get_json()
    assert len(first["channels"]) == 25 and first["next_cursor"] is None
    for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "not a name"}):
        refused = client.get("/api/channels", query_string=bad)
        assert refused.status_code == 400, bad


def test_the_channel_list_answers_a_default_page_however_many_channels_exist(
    make_app: AppFactory, fault_redis_client: redis.Redis
) -> None:
    store_many_channels(fault_redis_client, MANY_CHANNELS, "list")
    client = make_app().test_client()

    response = client.get("/api/channels")

    page = response.get_json()
    assert len(page["channels"]) == 100 and page["next_cursor"] == "list.00099"
    assert len(response.get_data()) < 20_000


# -- stream slots ------------------------------------------------------------------------


def test_streams_past_the_clients_share_are_429_and_past_the_process_total_503(
    make_app: AppFactory,
) -> None:
    app = make_app(SSE_MAX_STREAMS=3, SSE_MAX_STREAMS_PER_CLIENT=2)
    client = app.test_client()

    def open_stream(address: str, path: str = "/api/channels/slots/events") -> Any:
        return client.get(path, buffered=False, environ_base={"REMOTE_ADDR": address})

    first, second = open_stream("10.0.0.1"), open_stream("10.0.0.1", "/api/events?pattern=*")
    assert first.status_code == second.status_code == 200
    third = open_stream("10.0.0.1")
    assert third.status_code == 429 and third.headers["Retry-After"]
    assert third.get_json()["error"]["code"] == "too_many_streams"
    other = open_stream("10.0.0.2")
    assert other.status_code == 200
    full = open_stream("10.0.0.3")
    assert full.status_code == 503 and full.headers["Retry-After"]

    first.close()  # a closed stream gives its slot back
    again = open_stream("10.0.0.1")
    assert again.status_code == 200
    for response in (second, other, again, third, full):
        response.close()
    assert app.extensions["taskrelay.sse_slots"].open_streams() == 0


# -- pattern subscriptions ---------------------------------------------------------------


def test_a_pattern_subscription_reads_the_same_whatever_the_number_of_channels(
    fault_redis_client: redis.Redis,
) -> None:
    store_many_channels(fault_redis_client, MANY_CHANNELS, "many")
    pattern = channels.parse_pattern("many.*")
    oldest = fault_redis_client.xrange(keys.CHANNEL_RECENT, count=1)[0][1]["i"]
    # The index is shared with the other tests of this module; what it holds bounds
    # how many batches any catch-up can read.
    batches = fault_redis_client.xlen(keys.CHANNEL_RECENT) // channel_log.READ_BATCH + 1
    before = xrange_calls(fault_redis_client)

    fresh, _ = cursor.resume_pattern(fault_redis_client, pattern, None)
    # A new subscription hears from its own millisecond on: at most what was published
    # in that one millisecond comes from the index.
    heard = list(cursor.catch_up(fault_redis_client, fresh, None, pattern))
    assert len(heard) < 50
    # At most one read per batch of the index's last second (these channels were just
    # made, so that may be all of them), one past the end, and one per message it
    # delivers: never one per channel.
    fresh_reads = xrange_calls(fault_redis_client) - before
    assert fresh_reads <= batches + 1 + len(heard), fresh_reads

    before = xrange_calls(fault_redis_client)
    resumed, gap = cursor.resume_pattern(fault_redis_client, pattern, oldest)
    assert gap is None
    # Resuming after an id is one read to locate it, whatever the number of channels.
    assert xrange_calls(fault_redis_client) - before == 1
    later = list(cursor.catch_up(fault_redis_client, resumed, None, pattern))
    assert len(later) == MANY_CHANNELS - 1


def test_a_pattern_resumes_exactly_after_its_last_id_across_channels(
    fault_redis_client: redis.Redis,
) -> None:
    published = [
        (channel, append(fault_redis_client, channel, n))
        for n, channel in enumerate(["p.a", "p.b", "q.c", "p.a", "p.b", "q.c", "p.a"])
    ]
    pattern = channels.parse_pattern("p.*")

    resumed, gap = cursor.resume_pattern(fault_redis_client, pattern, published[1][1])
    replayed = list(cursor.catch_up(fault_redis_client, resumed, None, pattern))

    assert gap is None
    assert [d.message_id for d in replayed] == [
        message_id for channel, message_id in published[2:] if channel.startswith("p.")
    ]
    unknown, gap = cursor.resume_pattern(fault_redis_client, pattern, channels.new_message_id())
    assert gap is not None
    assert len(list(cursor.catch_up(fault_redis_client, unknown, None, pattern))) == 5


def test_the_recent_index_is_trimmed_to_its_length_with_its_ids(
    fault_redis_client: redis.Redis,
) -> None:
    ids = [append(fault_redis_client, f"r.{n % 7}", n, recent=50) for n in range(300)]

    length = fault_redis_client.xlen(keys.CHANNEL_RECENT)
    assert 50 <= length < 50 + channel_log.TRIM_BATCH
    assert fault_redis_client.hlen(keys.CHANNEL_RECENT_IDS) == length
    assert recent.locate(fault_redis_client, ids[0]) is None
    newest = recent.locate(fault_redis_client, ids[-1])
    assert newest is not None and newest.channel == f"r.{(len(ids) - 1) % 7}"


def test_a_pattern_catch_up_skips_messages_their_channel_no_longer_retains(
    fault_redis_client: redis.Redis,
) -> None:
    start_id = append(fault_redis_client, "gone.a", 1, retention=1)
    append(fault_redis_client, "gone.a", 2, retention=1)  # trimmed by the next one
    newest_a = append(fault_redis_client, "gone.a", 3, retention=1)
    newest_b = append(fault_redis_client, "gone.b", 4)
    pattern = channels.parse_pattern("gone.*")
    start, _ = cursor.resume_pattern(fault_redis_client, pattern, start_id)

    caught_up = list(cursor.catch_up(fault_redis_client, start, None, pattern))

    assert [d.message_id for d in caught_up] == [newest_a, newest_b]


# -- the OpenAPI document ----------------------------------------------------------------


def test_the_openapi_document_states_the_bounds_the_app_applies(make_app: AppFactory) -> None:
    app = make_app(
        CHANNEL_MESSAGE_MAX_BYTES=1234,
        CHANNEL_MAX_CHANNELS=56,
        CHANNEL_RETENTION_BYTES=78901,
        SSE_MAX_STREAMS_PER_CLIENT=7,
        SSE_MAX_STREAMS=89,
        CHANNEL_LIST_MAX=321,
    )
    paths = app.test_client().get("/api/openapi.json").get_json()["paths"]

    publish = paths["/api/channels/{channel}/messages"]["post"]
    assert "1234 bytes" in publish["description"] and "78901 bytes" in publish["description"]
    assert "1234 bytes" in publish["responses"]["413"]["description"]
    assert "56 channels" in publish["responses"]["409"]["description"]
    for path in ("/api/events", "/api/channels/{channel}/events"):
        responses = paths[path]["get"]["responses"]
        assert "7 event streams" in responses["429"]["description"]
        assert "89 event streams" in responses["503"]["description"]
        assert "Retry-After" in responses["429"]["headers"]
    listing = paths["/api/channels"]["get"]
    [limit] = [p for p in listing["parameters"] if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == 321
