"""The channels API through Flask's client, against a real Redis and a real relay worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tasks import channels, keys
from tasks.celery_ext import relay_sweeper
from tasks.channels import log as channel_log
from tasks.channels.relay import RELAY_TASK_NAME
from tests.sse_reader import SseReader, flask_lines
from tests.support import wait_until
from webapp import create_app
from webapp.channels import metrics as channel_metrics
from webapp.services import services

pytestmark = pytest.mark.usefixtures("relay_worker")


def fresh_channel(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def publish(client: FlaskClient, channel: str, data: Any) -> dict[str, Any]:
    response = client.post(f"/api/channels/{channel}/messages", json={"data": data})
    assert response.status_code == 202, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def history(client: FlaskClient, channel: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/channels/{channel}/messages", query_string=params)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def wait_for_history(client: FlaskClient, channel: str, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = history(client, channel, limit=1000)["messages"]
        return found if len(found) >= count else None

    return wait_until(probe, what=f"{count} messages in {channel}")


def every_channel(client: FlaskClient) -> list[dict[str, Any]]:
    """Every page of GET /api/channels."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/channels", query_string=query).get_json()
        found += page["channels"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def end_stream(flask_app: Flask, reader: SseReader, response: Any) -> None:
    """Stop the app's hub: the stream ends with a reconnect hint, then it can be closed."""
    flask_app.extensions["taskrelay.hub"].stop()
    last = None
    while (event := reader.next()) is not None:
        last = event
    assert last is None or last.event != "message"
    reader.join()
    response.close()


@pytest.fixture
def small_retention_app(redis_url: str) -> Iterator[Flask]:
    flask_app = create_app({"TESTING": True, "REDIS_URL": redis_url, "CHANNEL_RETENTION": 5})
    yield flask_app
    with flask_app.app_context():
        services().close()


def test_a_published_message_is_accepted_with_an_id_and_lands_in_the_history(
    client: FlaskClient,
) -> None:
    channel = fresh_channel()
    accepted = publish(client, channel, {"price": 42, "tags": ["a"]})
    assert set(accepted) == {"id", "channel"}
    assert accepted["channel"] == channel
    [message] = wait_for_history(client, channel, 1)
    assert message["id"] == accepted["id"]
    assert message["channel"] == channel
    assert message["data"] == {"price": 42, "tags": ["a"]}
    assert message["published_at"]


@pytest.mark.parametrize(
    "name",
    [
        "-starts-with-a-dash",
        "has space",
        "x" * 65,
        "émoji",
        "taskrelay:tasks",
        "TaskRelay:anything",
        "celery-task-meta-1234",
        "worker.celery.pidbox",
        "unacked_index",
        "celery",
        "tasks",
    ],
)
def test_a_bad_or_reserved_channel_name_is_400(client: FlaskClient, name: str) -> None:
    for response in (
        client.post(f"/api/channels/{name}/messages", json={"data": 1}),
        client.get(f"/api/channels/{name}/messages"),
        client.get(f"/api/channels/{name}/events"),
    ):
        assert response.status_code == 400, (name, response.status_code)
        error = response.get_json()["error"]
        assert error["code"] == "bad_request" and error["field"] == "channel"


@pytest.mark.parametrize(
    "pattern", ["", "news.**", "news*", ".news", "news..eu", "taskrelay:*", "a/b", "x" * 65]
)
def test_a_bad_pattern_is_400(client: FlaskClient, pattern: str) -> None:
    response = client.get("/api/events", query_string={"pattern": pattern})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "pattern"


def test_a_body_without_data_or_with_unknown_fields_is_400(client: FlaskClient) -> None:
    channel = fresh_channel()
    missing = client.post(f"/api/channels/{channel}/messages", json={})
    assert missing.status_code == 400 and missing.get_json()["error"]["field"] == "data"
    extra = client.post(f"/api/channels/{channel}/messages", json={"data": 1, "ttl": 5})
    assert extra.status_code == 400 and extra.get_json()["error"]["field"] == "ttl"
    not_json = client.post(f"/api/channels/{channel}/messages", data="x", content_type="text/plain")
    assert not_json.status_code == 415


def test_a_malformed_last_event_id_is_400(client: FlaskClient) -> None:
    channel = fresh_channel()
    by_header = client.get(f"/api/channels/{channel}/events", headers={"Last-Event-ID": "12-0"})
    assert by_header.status_code == 400
    assert by_header.get_json()["error"]["field"] == "last_event_id"
    by_query = client.get("/api/events?pattern=test.*&last_event_id=nope")
    assert by_query.status_code == 400
    assert client.get(f"/api/channels/{channel}/messages?after=zz").status_code == 400


def test_history_after_an_id_has_only_later_messages_oldest_first(client: FlaskClient) -> None:
    channel = fresh_channel()
    ids = [publish(client, channel, n)["id"] for n in range(5)]
    wait_for_history(client, channel, 5)
    later = history(client, channel, after=ids[1])
    assert [m["id"] for m in later["messages"]] == ids[2:]
    assert later["gap"] is False
    assert [m["data"] for m in history(client, channel, limit=2)["messages"]] == [0, 1]
    assert client.get(f"/api/channels/{channel}/messages?limit=0").status_code == 400


def test_a_relay_message_delivered_twice_is_published_once(
    app: Flask, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    message_id = channels.new_message_id()
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.channel_pubsub(channel))
    wait_until(lambda: pubsub.get_message(timeout=0.1) is None, what="subscription")
    kwargs = {
        "channel": channel,
        "message_id": message_id,
        "data": "once",
        "published_at": "2030-01-01T00:00:00+00:00",
        "retention": 100,
    }
    with app.app_context():
        celery = services().celery
        # The same message twice, as the broker redelivers it after a worker died.
        celery.send_task(RELAY_TASK_NAME, kwargs=kwargs)
        celery.send_task(RELAY_TASK_NAME, kwargs=kwargs)
    first = wait_until(lambda: pubsub.get_message(timeout=0.5), what="the publish")
    assert json.loads(first["data"])["message"]["id"] == message_id
    wait_until(
        lambda: redis_client.llen("relay") == 0, what="the relay queue to drain"
    )  # both copies were taken
    assert pubsub.get_message(timeout=2.0) is None
    pubsub.close()
    assert redis_client.xlen(keys.channel_stream(channel)) == 1


def test_appending_the_same_message_again_changes_nothing(redis_client: redis.Redis) -> None:
    channel = fresh_channel()
    message_id = channels.new_message_id()
    envelope = channels.envelope(message_id, channel, 1)
    first = channel_log.append_and_publish(redis_client, channel, message_id, envelope)
    again = channel_log.append_and_publish(redis_client, channel, message_id, envelope)
    assert first.published and not again.published
    assert again.position == first.position
    assert redis_client.xlen(keys.channel_stream(channel)) == 1


def test_a_message_the_broker_lost_is_relayed_by_the_sweeper(redis_client: redis.Redis) -> None:
    channel = fresh_channel()
    pending = channel_log.Pending(
        channel=channel,
        message_id=channels.new_message_id(),
        data={"lost": True},
        published_at="2030-01-01T00:00:00+00:00",
        retention=100,
    )
    # Accepted a minute ago, and its relay task never ran.
    channel_log.remember_pending(redis_client, pending, time.time() - 60)
    assert relay_sweeper.sweep(redis_client, older_than_s=30) >= 1
    [(_, fields)] = redis_client.xrange(keys.channel_stream(channel))
    assert fields["id"] == pending.message_id
    assert json.loads(fields["message"])["data"] == {"lost": True}
    assert redis_client.hget(keys.RELAY_PENDING, pending.message_id) is None
    relay_sweeper.sweep(redis_client, older_than_s=30)
    assert redis_client.xlen(keys.channel_stream(channel)) == 1


def test_a_relayed_message_is_no_longer_pending(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    message_id = publish(client, channel, 1)["id"]
    wait_for_history(client, channel, 1)
    assert redis_client.hget(keys.RELAY_PENDING, message_id) is None
    assert redis_client.zscore(keys.RELAY_PENDING_INDEX, message_id) is None


def test_retention_trims_the_stream_and_its_index_together(redis_client: redis.Redis) -> None:
    channel = fresh_channel()
    ids = [channels.new_message_id() for _ in range(12)]
    for message_id in ids:
        channel_log.append_and_publish(
            redis_client,
            channel,
            message_id,
            channels.envelope(message_id, channel, 0),
            retention=5,
        )
    assert redis_client.xlen(keys.channel_stream(channel)) == 5
    assert sorted(redis_client.hkeys(keys.channel_positions(channel))) == sorted(ids[-5:])


def test_events_resume_after_last_event_id_with_exactly_the_missed_messages(
    client: FlaskClient,
) -> None:
    channel = fresh_channel()
    ids = [publish(client, channel, n)["id"] for n in range(6)]
    wait_for_history(client, channel, 6)
    response = client.get(
        f"/api/channels/{channel}/events", headers={"Last-Event-ID": ids[2]}, buffered=False
    )
    assert response.mimetype == "text/event-stream"
    reader = SseReader(flask_lines(response))
    replayed = reader.messages(3)
    assert [m["id"] for m in replayed] == ids[3:]
    live = publish(client, channel, "live")["id"]
    assert [m["id"] for m in reader.messages(1)] == [live]
    end_stream(client.application, reader, response)


def test_an_id_older_than_retention_gets_a_gap_event_then_what_is_retained(
    small_retention_app: Flask,
) -> None:
    client = small_retention_app.test_client()
    channel = fresh_channel()
    ids = [publish(client, channel, n)["id"] for n in range(12)]
    wait_until(
        lambda: (
            history(client, channel)["messages"][-1:]
            and history(client, channel)["messages"][-1]["id"] == ids[-1]
        ),
        what="the last message",
    )
    retained = [m["id"] for m in history(client, channel)["messages"]]
    assert len(retained) == 5 and retained == ids[-5:]
    assert history(client, channel, after=ids[0])["gap"] is True
    response = client.get(f"/api/channels/{channel}/events?last_event_id={ids[0]}", buffered=False)
    reader = SseReader(flask_lines(response))
    gap = reader.next()
    assert gap is not None and gap.event == "gap"
    assert json.loads(gap.data)["last_event_id"] == ids[0]
    assert [m["id"] for m in reader.messages(5)] == ids[-5:]
    end_stream(small_retention_app, reader, response)


def test_the_article_pubsub_trigger_publishes_a_number_and_redirects_home(
    client: FlaskClient,
) -> None:
    before = len(history(client, "task:pubsub:channel", limit=1000)["messages"])
    response = client.get("/pubsub")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    [newest] = wait_for_history(client, "task:pubsub:channel", before + 1)[-1:]
    assert newest["data"] in range(9)


def test_channels_are_listed_with_length_and_last_id(client: FlaskClient) -> None:
    channel = fresh_channel()
    ids = [publish(client, channel, n)["id"] for n in range(3)]
    wait_for_history(client, channel, 3)
    listed = {c["name"]: c for c in every_channel(client)}
    assert listed[channel] == {"name": channel, "length": 3, "last_id": ids[-1], "subscribers": 0}


def test_what_was_published_is_counted_once_per_message(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    channel = fresh_channel()
    for n in range(4):
        publish(client, channel, n)
    wait_for_history(client, channel, 4)
    assert channel_metrics.cluster(redis_client)[channel].published == 4
    assert channel_metrics.METRICS.snapshot()[channel].published == 4


def test_the_openapi_document_describes_the_channels_api(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert "post" in paths["/api/channels/{channel}/messages"]
    assert "get" in paths["/api/channels/{channel}/messages"]
    for path in ("/api/channels", "/api/channels/{channel}/events", "/api/events"):
        assert "get" in paths[path]


def test_metrics_report_channel_figures_and_sse_clients(client: FlaskClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    channel = f"metrics.{uuid.uuid4().hex[:8]}"
    assert client.post(f"/api/channels/{channel}/messages", json={"data": 1}).status_code == 202

    def published() -> bool:
        text = client.get("/metrics").get_data(as_text=True)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "taskrelay_channel_published_total" and sample.labels == {
                    "channel": channel
                }:
                    return sample.value == 1
        return False

    wait_until(published, timeout_s=30, what="the relayed message to be counted")
    names = {
        f.name
        for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
    }
    assert {
        "taskrelay_channel_delivered",
        "taskrelay_channel_dropped",
        "taskrelay_sse_clients",
    } <= names
