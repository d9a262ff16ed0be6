"""Reads closed by TASKRELAY_API_TOKENS_READ: every read needs a token, probes stay open.

Programs send ``Authorization: Bearer`` (the CLI's client, Prometheus); a browser
signs in once and its cookie carries the page's reads and event streams. The
article's GET triggers are guarded and rate limited like every other write.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from taskrelay.client import ApiError, Client
from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys, records
from tests.support import decoded_client, running_redis, start_web, stop
from webapp import create_app, session_cookie

WRITER = "writer-token-0123456789"
READER = "reader-token-9876543210"
TOKENS = {"API_TOKENS": f"{WRITER}, other-writer", "API_TOKENS_READ": READER}
# Every kind of read: the API, its document, the metrics and the dashboard.
READS = [
    "/api/tasks",
    "/api/registry",
    "/api/deadletters",
    "/api/channels",
    "/api/channels/news/messages",
    "/api/stats",
    "/api/openapi.json",
    "/metrics",
    "/",
]
AppFactory = Callable[..., FlaskClient]
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tokens_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # One Redis for the module (starting one takes seconds); each test flushes it.
    with running_redis(tmp_path_factory.mktemp("tokens-redis"), durable=False) as server:
        yield server


@pytest.fixture
def redis_db(tokens_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    with decoded_client(tokens_redis.url) as client:
        client.flushall()
        yield client


@pytest.fixture
def make_app(tokens_redis: EmbeddedRedis, redis_db: redis.Redis) -> Iterator[AppFactory]:
    """Apps with the settings a test gives; each is closed at the end."""
    made: list[Flask] = []

    def make(**settings: str) -> FlaskClient:
        app = create_app({"TESTING": True, "REDIS_URL": tokens_redis.url, **settings})
        made.append(app)
        return app.test_client()

    yield make
    for app in made:
        app.extensions["taskrelay"].close()


@pytest.fixture
def closed(make_app: AppFactory) -> FlaskClient:
    return make_app(**TOKENS)


def finished_task(client: redis.Redis) -> str:
    """A task that has ended, stored as the API and a worker store it."""
    task_id = str(uuid.uuid4())
    with client.pipeline(transaction=False) as pipe:
        records.save_submission(
            pipe, task_id, task="noop", args=[], kwargs={}, submitted_at=records.utc_now_iso()
        )
        pipe.execute()
    client.set(keys.celery_result(task_id), json.dumps({"status": "SUCCESS", "result": 7}))
    return task_id


def test_with_read_tokens_every_read_needs_a_token(closed: FlaskClient) -> None:
    for path in READS:
        missing = closed.get(path)
        assert missing.status_code == 401, path
        assert missing.get_json()["error"]["code"] == "unauthorized"
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert closed.get(path, headers=bearer("guessed")).status_code == 403, path
        assert closed.get(path, headers={"Authorization": READER}).status_code == 401, path
        assert closed.get(path, headers=bearer(READER)).status_code == 200, path
        assert closed.get(path, headers=bearer(WRITER)).status_code == 200, path


def test_probes_static_files_and_the_sign_in_form_stay_open(closed: FlaskClient) -> None:
    assert closed.get("/healthz").status_code == 200
    assert closed.get("/readyz").status_code in (200, 503)  # no worker: not ready, not refused
    with closed.get("/static/dashboard.css") as styles:
        assert styles.status_code == 200
    assert closed.get("/login").status_code == 200


def test_a_read_token_cannot_write(closed: FlaskClient) -> None:
    body = {"task": "noop"}
    assert closed.post("/api/tasks", json=body, headers=bearer(READER)).status_code == 403
    assert closed.get("/prodcons", headers=bearer(READER)).status_code == 403
    assert closed.post("/api/tasks", json=body, headers=bearer(WRITER)).status_code == 202


def test_the_dashboard_signs_in_with_a_cookie_that_carries_reads_and_event_streams(
    closed: FlaskClient, redis_db: redis.Redis
) -> None:
    page = closed.get("/", headers=HTML)
    assert page.status_code == 303
    assert page.headers["Location"].endswith("/login")
    assert closed.post("/login", data={"token": "guessed"}).status_code == 403
    assert closed.post("/login", data={"token": ""}).status_code == 400

    signed_in = closed.post("/login", data={"token": READER})
    assert signed_in.status_code == 303
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith(f"{session_cookie.COOKIE_NAME}=")
    assert READER not in cookie
    for attribute in ("HttpOnly", "SameSite=Strict", f"Max-Age={session_cookie.SESSION_TTL_S}"):
        assert attribute in cookie

    assert closed.get("/", headers=HTML).status_code == 200
    assert closed.get("/api/tasks").status_code == 200
    stream = closed.get(f"/api/tasks/{finished_task(redis_db)}/events")
    assert stream.status_code == 200
    assert '"state":"SUCCESS"' in stream.get_data(as_text=True)
    # The cookie only ever reads: a write still needs the token itself.
    assert closed.post("/api/tasks", json={"task": "noop"}).status_code == 401

    signed_out = closed.post("/logout")
    assert signed_out.status_code == 303
    assert closed.get("/api/tasks").status_code == 401


@pytest.mark.parametrize(
    "value",
    [
        session_cookie.issue("not-a-configured-token"),
        session_cookie.issue(READER, now=time.time() - session_cookie.SESSION_TTL_S - 1),
        "9" * 40 + ".00",
        "garbage",
        "",
    ],
)
def test_a_forged_or_expired_cookie_reads_nothing(closed: FlaskClient, value: str) -> None:
    closed.set_cookie(session_cookie.COOKIE_NAME, value)
    assert closed.get("/api/tasks").status_code == 401


def test_the_document_states_that_reads_may_be_refused(closed: FlaskClient) -> None:
    paths = closed.get("/api/openapi.json", headers=bearer(READER)).get_json()["paths"]
    assert {"401", "403"} <= set(paths["/api/tasks"]["get"]["responses"])
    assert {"401", "403", "429"} <= set(paths["/api/tasks"]["post"]["responses"])
    assert "401" not in paths["/healthz"]["get"]["responses"]


def test_read_tokens_without_api_tokens_are_refused_at_start(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="TASKRELAY_API_TOKENS"):
        make_app(API_TOKENS_READ=READER)


def test_the_article_triggers_need_a_token_when_tokens_are_set(make_app: AppFactory) -> None:
    client = make_app(API_TOKENS=WRITER)
    for path in ("/prodcons", "/pubsub"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=bearer("guessed")).status_code == 403
        assert client.get(path, headers=bearer(WRITER)).status_code == 302
    assert client.get("/").status_code == 200  # reads stay open without read tokens


def test_the_article_triggers_are_rate_limited_without_tokens(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT="2/minute")
    # Counted per client and per endpoint, as every write is.
    for path in ("/prodcons", "/pubsub"):
        assert [client.get(path).status_code for _ in range(3)] == [302, 302, 429]


def test_the_article_triggers_are_rate_limited_with_tokens(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT="2/minute", API_TOKENS=WRITER)
    answers = [client.get("/prodcons", headers=bearer(WRITER)).status_code for _ in range(3)]
    assert answers == [302, 302, 429]


@pytest.fixture(scope="module")
def closed_web(tokens_redis: EmbeddedRedis, log_dir: Path) -> Iterator[str]:
    """Real gunicorn with reads closed, configured as an operator would."""
    child, base_url = start_web(
        tokens_redis.url,
        log_dir,
        env={"TASKRELAY_API_TOKENS": WRITER, "TASKRELAY_API_TOKENS_READ": READER},
    )
    yield base_url
    stop(child)


def test_over_http_the_client_and_prometheus_read_with_their_bearer_token(
    closed_web: str, redis_db: redis.Redis
) -> None:
    task_id = finished_task(redis_db)
    reader = Client(closed_web, READER)
    try:
        states = [doc["state"] for doc in reader.follow_task(task_id, timeout_s=10)]
        assert states == ["SUCCESS"]
    finally:
        reader.close()
    anonymous = Client(closed_web)
    try:
        with pytest.raises(ApiError, match="401"):
            list(anonymous.follow_task(task_id, timeout_s=10))
    finally:
        anonymous.close()
    assert httpx.get(f"{closed_web}/metrics", timeout=10).status_code == 401
    scrape = httpx.get(f"{closed_web}/metrics", headers=bearer(READER), timeout=10)
    assert scrape.status_code == 200
    assert "taskrelay_tasks_submitted" in scrape.text


def test_over_http_a_signed_in_browser_opens_a_channel_stream_with_its_cookie(
    closed_web: str,
) -> None:
    with httpx.Client(base_url=closed_web, timeout=10) as browser:
        url = "/api/channels/news/events"
        with browser.stream("GET", url, headers={"Accept": "text/event-stream"}) as refused:
            assert refused.status_code == 401
        assert browser.post("/login", data={"token": READER}).status_code == 303
        with browser.stream("GET", url, headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.headers["X-Content-Type-Options"] == "nosniff"
