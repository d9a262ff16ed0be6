"""Nothing a client sends produces a 5xx or breaks a page for others; every answer is armoured.

Deeply nested JSON, lone UTF-16 surrogates, numbers past a float, odd
Idempotency-Keys; values that the API once accepted and stored, rendered by the
dashboard; and the security headers on every kind of response.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import deadletters, keys, records
from tests.support import decoded_client, running_redis
from webapp import create_app
from webapp.headers import DATA_CONTENT_SECURITY_POLICY
from webapp.jsonbody import MAX_JSON_DEPTH, nesting_depth_exceeds

# Deep enough to have broken the parser itself (RecursionError, then 500).
PARSER_BREAKING_DEPTH = 100_000
# Deep enough to have broken what ran after the parser (validation, the relay's
# message), though the parser took it.
HANDLER_BREAKING_DEPTH = 500
# Stand-ins for the path parameters of the documented POST operations.
PATH_PARAMETERS = {
    "channel": "hostile.input",
    "task_id": str(uuid.uuid4()),
    "ref": "hostile-schedule",
    "workflow_id": str(uuid.uuid4()),
}


@pytest.fixture(scope="module")
def hostile_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # One Redis for the module (starting one takes seconds); each test flushes it.
    with running_redis(tmp_path_factory.mktemp("hostile-redis"), durable=False) as server:
        yield server


@pytest.fixture(scope="module")
def hostile_app(hostile_redis: EmbeddedRedis) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "REDIS_URL": hostile_redis.url})
    yield app
    app.extensions["taskrelay"].close()


@pytest.fixture
def redis_db(hostile_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    with decoded_client(hostile_redis.url) as client:
        client.flushall()
        yield client


@pytest.fixture
def client(hostile_app: Flask, redis_db: redis.Redis) -> FlaskClient:
    return hostile_app.test_client()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def post_raw(client: FlaskClient, path: str, text: str, **headers: str) -> Any:
    return client.post(
        path, data=text.encode(), content_type="application/json", headers=headers or None
    )


def documented_posts(client: FlaskClient) -> list[tuple[str, bool]]:
    """Each POST path of the OpenAPI document, with its parameters filled in, and whether
    it reads a body."""
    document = client.get("/api/openapi.json").get_json()
    found = []
    for template, operations in document["paths"].items():
        if "post" in operations:
            path = re.sub(r"\{(\w+)\}", lambda m: PATH_PARAMETERS[m.group(1)], template)
            found.append((path, "requestBody" in operations["post"]))
    return found


@pytest.mark.parametrize(
    "depth", [MAX_JSON_DEPTH + 1, HANDLER_BREAKING_DEPTH, PARSER_BREAKING_DEPTH]
)
def test_deeply_nested_json_on_every_post_endpoint_is_refused_with_400(
    client: FlaskClient, depth: int
) -> None:
    posts = documented_posts(client)
    assert sum(reads_body for _, reads_body in posts) >= 2  # tasks and channel messages
    for path, reads_body in posts:
        for field in ("args", "kwargs", "data", "task"):
            answer = post_raw(client, path, f'{{"{field}": {nested(depth)}}}')
            if reads_body:
                assert answer.status_code == 400, (path, field, answer.get_json())
                message = answer.get_json()["error"]["message"]
                assert f"deeper than {MAX_JSON_DEPTH}" in message
            else:  # the body is never read: no answer may be a server error
                assert answer.status_code < 500, (path, field, answer.get_data()[:300])


def test_json_nested_exactly_to_the_bound_is_processed(client: FlaskClient) -> None:
    # The body's own object is the first level.
    answer = post_raw(
        client, "/api/channels/hostile.input/messages", f'{{"data": {nested(MAX_JSON_DEPTH - 1)}}}'
    )
    assert answer.status_code == 202, answer.get_json()


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    deep_text = json.dumps({"data": ["[" * 1000, "{" * 1000, '\\"[[[[', "\\"]})
    assert not nesting_depth_exceeds(deep_text, MAX_JSON_DEPTH)
    assert json.loads(deep_text)["data"][0] == "[" * 1000
    escaped_quote_then_deep = '{"data": "\\"", "x": ' + nested(MAX_JSON_DEPTH) + "}"
    assert nesting_depth_exceeds(escaped_quote_then_deep, MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/api/tasks", '{"task": "always_fails", "kwargs": {"message": "\\ud800"}}'),
        ("/api/tasks", '{"task": "always_fails", "args": ["tail \\udfff"]}'),
        ("/api/channels/hostile.input/messages", '{"data": "\\udc00 alone"}'),
        ("/api/channels/hostile.input/messages", '{"data": {"\\ud83d": 1}}'),
        ("/api/channels/hostile.input/messages", '{"data": ["\\ude00\\ud83d"]}'),  # wrong order
    ],
)
def test_a_lone_utf16_surrogate_is_refused_with_400(
    client: FlaskClient, path: str, text: str
) -> None:
    answer = post_raw(client, path, text)
    assert answer.status_code == 400, answer.get_json()
    assert "surrogate" in answer.get_json()["error"]["message"]


def test_a_surrogate_pair_is_a_character_and_is_accepted(client: FlaskClient) -> None:
    answer = post_raw(
        client,
        "/api/tasks",
        '{"task": "always_fails", "kwargs": {"message": "smile \\ud83d\\ude00 \\\\ud800"}}',
    )
    assert answer.status_code == 202, answer.get_json()
    task = client.get(f"/api/tasks/{answer.get_json()['id']}").get_json()
    assert task["kwargs"]["message"] == "smile \U0001f600 \\ud800"


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": 1e999}',
        b'{"data": -1e400}',
        b'{"data": NaN}',
        b'{"data": "\xed\xa0\x80"}',  # a surrogate encoded as bytes: not UTF-8
        b'{"data": "\xff"}',
        '{"data": "x"}'.encode("utf-16"),
        b'{"data": 1' + b"0" * 5000 + b"}",
    ],
)
def test_a_body_that_cannot_be_kept_as_json_is_refused_with_400(
    client: FlaskClient, body: bytes
) -> None:
    answer = client.post(
        "/api/channels/hostile.input/messages", data=body, content_type="application/json"
    )
    assert answer.status_code == 400, answer.get_json()


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("order-42", 202),
        ('"draft style, quoted: a b ~"', 202),
        ("x" * 255, 202),
        ("x" * 256, 400),
        ("é".encode().decode("latin-1"), 400),  # UTF-8 letters, as a server reads them
        ("ł".encode().decode("latin-1"), 400),
        ("\xff\xfe", 400),  # bytes that are not UTF-8
        ("tab\tinside", 400),
    ],
)
def test_an_idempotency_key_is_printable_ascii_or_refused_with_400(
    client: FlaskClient, key: str, status: int
) -> None:
    body = {"task": "always_fails", "kwargs": {"message": key[:20]}}
    answer = client.post("/api/tasks", json=body, headers={"Idempotency-Key": key})
    assert answer.status_code == status, answer.get_json()
    if status == 400:
        assert answer.get_json()["error"]["field"] == "Idempotency-Key"


HOSTILE_TEXTS = [
    "\ud800",
    "tail \udfff",
    "\udc00\ud83d",
    "</pre><script>alert(1)</script>",
    "\x00\x1b[31m\u202e",
]


def store_hostile_task(db: redis.Redis, state: str) -> str:
    """A task record, result and dead letter as the API and workers stored them before
    the API refused lone surrogates."""
    task_id = str(uuid.uuid4())
    with db.pipeline(transaction=False) as pipe:
        records.save_submission(
            pipe,
            task_id,
            task="always_fails",
            args=HOSTILE_TEXTS,
            kwargs={text: text for text in HOSTILE_TEXTS},
            submitted_at=records.utc_now_iso(),
        )
        pipe.execute()
    meta: dict[str, Any]
    if state == "SUCCESS":
        meta = {"status": "SUCCESS", "result": {"echo": HOSTILE_TEXTS}, "traceback": None}
    else:
        meta = {
            "status": "FAILURE",
            "result": {"exc_type": "ValueError", "exc_message": HOSTILE_TEXTS},
            "traceback": "\n".join(HOSTILE_TEXTS),
        }
    db.set(keys.celery_result(task_id), json.dumps(meta))
    return task_id


def test_the_dashboard_renders_hostile_values_stored_in_redis(
    client: FlaskClient, redis_db: redis.Redis
) -> None:
    succeeded = store_hostile_task(redis_db, "SUCCESS")
    failed = store_hostile_task(redis_db, "FAILURE")
    entry = {
        "id": failed,
        "task": "always_fails",
        "args": HOSTILE_TEXTS,
        "kwargs": {text: text for text in HOSTILE_TEXTS},
        "error": {"type": "\ud800", "message": "\n".join(HOSTILE_TEXTS)},
        "traceback": "\n".join(HOSTILE_TEXTS),
        "retries": 0,
        "failed_at": records.utc_now_iso(),
    }
    with redis_db.pipeline(transaction=False) as pipe:
        for command in deadletters.add_commands(failed, entry):
            pipe.execute_command(*command)
        pipe.execute()

    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # The server renders the dead letters; the task table and each task's page
    # are drawn by their scripts from the JSON read below.
    assert failed in html
    for task_id in (succeeded, failed):
        task_page = client.get(f"/tasks/{task_id}")
        assert task_page.status_code == 200
        assert task_id in task_page.get_data(as_text=True)
    assert "\\ud800" in html  # the lone surrogate, shown as its escape
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The data the page's script reads again answers too, as JSON.
    for path in (
        f"/api/tasks/{succeeded}",
        f"/api/tasks/{failed}",
        "/api/tasks",
        "/api/deadletters",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, path
        json.loads(answer.get_data())


def assert_armoured(response: Any, *, page: bool = False) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    if page:
        assert "script-src 'self'" in policy  # the dashboard keeps its own strict policy
        assert "'unsafe-inline'" not in policy
    else:
        assert policy == DATA_CONTENT_SECURITY_POLICY


def test_every_kind_of_response_carries_the_security_headers(
    client: FlaskClient, redis_db: redis.Redis
) -> None:
    assert_armoured(client.get("/api/registry"))  # JSON
    assert_armoured(client.get("/api/tasks/no-such-task"))  # an API error
    assert_armoured(client.post("/api/tasks", data="[", content_type="application/json"))
    assert_armoured(client.get("/no/such/page"))  # Werkzeug's own HTML error
    assert_armoured(client.get("/healthz"))
    with client.get("/static/dashboard.js") as script:
        assert_armoured(script)
    assert_armoured(client.get("/"), page=True)
    finished = store_hostile_task(redis_db, "SUCCESS")
    stream = client.get(f"/api/tasks/{finished}/events")
    assert stream.mimetype == "text/event-stream"
    assert_armoured(stream)
    assert "event: state" in stream.get_data(as_text=True)


def test_the_dashboard_renders_when_a_hand_written_entry_is_not_utf8_or_json(
    client: FlaskClient, hostile_redis: EmbeddedRedis
) -> None:
    raw = redis.Redis.from_url(hostile_redis.url)  # bytes as they are, no decoding
    try:
        broken, odd = str(uuid.uuid4()), str(uuid.uuid4())
        raw.hset(
            keys.task_record(broken), mapping={"task": b"\xff\xfe", "args": b'["\xed\xa0\x80"]'}
        )
        raw.zadd(keys.TASK_INDEX, {broken: 1.0})
        raw.set(keys.dead_letter(broken), b"not json {")
        raw.set(keys.dead_letter(odd), b'{"id": 7, "task": [1], "args": "x", "error": "e"}')
        raw.zadd(keys.DEAD_LETTER_INDEX, {broken: 1.0, odd: 2.0})
        page = client.get("/")
        assert page.status_code == 200
        assert "not valid UTF-8 or JSON" in page.get_data(as_text=True)
        raw.delete(keys.dead_letter(broken), keys.task_record(broken))
        # A dead letter whose fields have unexpected types is shown as it is.
        page = client.get("/")
        assert page.status_code == 200
        assert 'data-dead-letter-id="7"' in page.get_data(as_text=True)
    finally:
        raw.close()


def test_the_dashboard_renders_a_task_whose_list_parameter_is_required(
    client: FlaskClient,
) -> None:
    import tests.workflow_tasks  # noqa: F401  (registers `total`, whose `values` is required)

    page = client.get("/")

    assert page.status_code == 200
    assert 'data-task="total"' in page.get_data(as_text=True)
