"""GET /api/stats: queue depths and recent throughput, cheap enough for a dashboard to poll.

Submissions per minute are exact (counts over the task index). Finished tasks per
minute come from the result metas of at most STATS_SCAN_MAX recent tasks, so under
a heavy load the figure is a lower bound and the answer says so with "sampled".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify

from tasks import keys, records, redis_urls
from tasks.connections import make_web_client
from tasks.queues import QUEUES
from tasks.text import as_text
from webapp.ops.queues import queue_depths
from webapp.services import services, services_of

bp = Blueprint("stats_api", __name__, url_prefix="/api")

EXTENSION_KEY = "taskrelay.stats"
# Throughput is counted in buckets of this many seconds, over this many buckets.
BUCKET_S = 60
BUCKET_COUNT = 10
# How many of the newest tasks in the window are read to count finished ones.
STATS_SCAN_MAX = 500
# Tasks submitted this long before the window may still finish inside it, in seconds.
FINISH_LOOKBACK_S = 600
# Answers are shared between requests for this long, so many open dashboards cost
# one computation, in seconds.
CACHE_TTL_S = 2.0


@dataclass
class StatsState:
    broker: redis.Redis | None
    lock: threading.Lock
    cached_at: float = 0.0
    cached: dict[str, Any] | None = None


def init_app(app: Flask) -> None:
    """Register the blueprint and make the broker client once, in the factory."""
    svc = services_of(app)
    broker_url = svc.celery.conf.broker_url or ""
    if broker_url == app.config["REDIS_URL"]:
        broker: redis.Redis | None = svc.redis
    elif redis_urls.is_direct_redis(broker_url):
        broker = make_web_client(broker_url)
        svc.on_close.append(broker.close)
    else:
        broker = None  # not a broker this process can read: depths are unknown
    app.extensions[EXTENSION_KEY] = StatsState(broker, threading.Lock())
    app.register_blueprint(bp)


@bp.get("/stats")
def stats() -> Response:
    state: StatsState = current_app.extensions[EXTENSION_KEY]
    with state.lock:
        now = time.monotonic()
        if state.cached is None or now - state.cached_at > CACHE_TTL_S:
            state.cached = compute(state.broker)
            state.cached_at = now
        body = state.cached
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def compute(broker: redis.Redis | None) -> dict[str, Any]:
    svc = services()
    now = time.time()
    with svc.redis.pipeline(transaction=False) as pipe:
        pipe.zrevrange(keys.TASK_INDEX, 0, 0)
        pipe.zrevrange(keys.DEAD_LETTER_INDEX, 0, 0)
        pipe.zcard(keys.DEAD_LETTER_INDEX)
        newest, newest_dead, dead_count = pipe.execute()
    depths: dict[str, int] = queue_depths(broker) if broker is not None else {}
    return {
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "queues": [{"name": name, "depth": depths.get(name)} for name in QUEUES],
        "throughput": throughput(svc.redis, svc.results, now),
        # Let a page notice tasks and dead letters that appeared elsewhere.
        "newest_task_id": as_text(newest[0]) if newest else None,
        "dead_letters": {
            "count": dead_count,
            "newest_id": as_text(newest_dead[0]) if newest_dead else None,
        },
    }


def throughput(client: redis.Redis, results: redis.Redis, now: float) -> dict[str, Any]:
    """Tasks submitted and finished per bucket, oldest bucket first."""
    current_start = now - now % BUCKET_S
    starts = [current_start - BUCKET_S * i for i in reversed(range(BUCKET_COUNT))]
    with client.pipeline(transaction=False) as pipe:
        for start in starts:
            pipe.zcount(keys.TASK_INDEX, start, f"({start + BUCKET_S}")
        submitted = pipe.execute()
    finished, sampled = _finished_per_bucket(client, results, starts)
    return {
        "bucket_s": BUCKET_S,
        "sampled": sampled,
        "buckets": [
            {
                "start": datetime.fromtimestamp(start, UTC).isoformat(),
                "submitted": count,
                "finished": done,
            }
            for start, count, done in zip(starts, submitted, finished, strict=True)
        ],
    }


def _finished_per_bucket(
    client: redis.Redis, results: redis.Redis, starts: list[float]
) -> tuple[list[int], bool]:
    since = starts[0] - FINISH_LOOKBACK_S
    task_ids = client.zrevrangebyscore(
        keys.TASK_INDEX, "+inf", since, start=0, num=STATS_SCAN_MAX + 1
    )
    sampled = len(task_ids) > STATS_SCAN_MAX
    task_ids = task_ids[:STATS_SCAN_MAX]
    counts = [0] * len(starts)
    if not task_ids:
        return counts, sampled
    metas = results.mget([keys.celery_result(as_text(t)) for t in task_ids])
    for raw in metas:
        finished_at = _date_done(raw)
        if finished_at is None:
            continue
        index = int((finished_at - starts[0]) // BUCKET_S)
        if 0 <= index < len(counts):
            counts[index] += 1
    return counts, sampled


def _date_done(raw: bytes | str | None) -> float | None:
    """When a finished task's meta says it was done, as a Unix time."""
    meta = records.parse_meta(raw)
    if meta is None or meta.get("status") not in ("SUCCESS", "FAILURE", "REVOKED"):
        return None
    done = meta.get("date_done")
    if not isinstance(done, str):
        return None
    try:
        moment = datetime.fromisoformat(done)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # Celery writes UTC
    return moment.timestamp()
