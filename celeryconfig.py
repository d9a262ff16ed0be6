"""Celery settings for taskrelay, read from the environment.

Plain data: importing this module reads environment variables and nothing else.
Every number carries its unit in its name or in the comment beside it.
"""

import os
from typing import Any

from tasks import queues, redis_urls

# The embedded Redis that `taskrelay up` starts listens here; any other Redis or
# Valkey is chosen with REDIS_URL (redis://, rediss://, with or without password).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6399/0"

# taskrelay keeps its own records, streams and pub/sub here. REDIS_SENTINELS with
# REDIS_MASTER_NAME name a Sentinel group instead (tasks/redis_urls.py): every
# client then follows the primary through a failover.
taskrelay_redis_url = redis_urls.from_environment(os.environ, DEFAULT_REDIS_URL)

# Unset or empty (as docker-compose passes an unset variable) means that Redis.
broker_url = redis_urls.or_default(os.environ.get("CELERY_BROKER_URL"), taskrelay_redis_url)
result_backend = redis_urls.or_default(os.environ.get("CELERY_RESULT_BACKEND"), taskrelay_redis_url)

# taskrelay's own task modules; workers and the web load them, then the user's
# own, named in TASKRELAY_TASK_MODULES (comma-separated, such as "mypkg.jobs").
imports = ("tasks.jobs", "tasks.channels.relay")
taskrelay_task_modules = os.environ.get("TASKRELAY_TASK_MODULES", "")

# JSON only, everywhere: a pickle payload is refused before it is decoded.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# A task is acknowledged after it ran, and a worker that dies mid-task hands the
# message back instead of dropping it. Tasks are written to be idempotent.
task_acks_late = True
task_reject_on_worker_lost = True
# STARTED is stored by the task base class, in the round trip that records the
# start (tasks/celery_ext/tracking.py), rather than by Celery in two more of its own.
task_track_started = False

# Prefetch is a throughput lever measured in docs/benchmarks.md; prefetched
# messages stay unacknowledged, so they come back if the worker dies.
worker_prefetch_multiplier = int(os.environ.get("TASKRELAY_PREFETCH", "4"))

# Two queues: slow work can never delay pub/sub delivery. Their declaration
# depends on the broker (see broker_dependent_settings below).
task_default_queue = queues.TASK_QUEUE
task_routes = ({"taskrelay.relay.*": {"queue": queues.RELAY_QUEUE}}, "tasks.registry.route")
task_create_missing_queues = False

# On Redis, a message not acknowledged within this many seconds goes back on the
# queue. Live workers renew the lease of every message they hold (tasks/celery_ext/leases.py)
# every third of this, so it bounds how long a dead worker's tasks wait, not how
# long a task or a countdown may take (see docs/decisions.md).
visibility_timeout_s = int(os.environ.get("TASKRELAY_VISIBILITY_TIMEOUT", "30"))
lease_renewal_interval_s = max(visibility_timeout_s / 3, 1.0)
# How often workers look for expired leases, in seconds; every look scans.
_unacked_restore_interval_s = max(min(visibility_timeout_s / 6, 5), 1)
_redis_transport_options = {
    "visibility_timeout": visibility_timeout_s,
    "unacked_restore_interval": _unacked_restore_interval_s,
    "unacked_restore_throttle": 1,
    "socket_connect_timeout": 2,
    "socket_timeout": 30,
    "retry_on_timeout": True,
    "health_check_interval": 25,
}

# RabbitMQ acknowledges natively, so it needs no visibility timeout; a publish
# counts only once the broker confirmed it, so a 202 means the message is stored.
_amqp_transport_options: dict[str, Any] = {"confirm_publish": True}
# taskrelay's transport for redis:// and rediss:// brokers (tasks/celery_ext/transport.py);
# TASKRELAY_BROKER_TRANSPORT=kombu keeps kombu's stock Redis transport, for comparison.
_TRANSPORTS = {"taskrelay": "tasks.celery_ext.transport:Transport", "kombu": None}
# A Sentinel URL always gets taskrelay's transport, its Sentinel variant: kombu's
# cannot read a URL that names several sentinels.
_SENTINEL_TRANSPORT = "tasks.celery_ext.sentinel_transport:Transport"
_transport_choice = os.environ.get("TASKRELAY_BROKER_TRANSPORT", "taskrelay")
if _transport_choice not in _TRANSPORTS:
    raise ValueError(f"TASKRELAY_BROKER_TRANSPORT must be one of {sorted(_TRANSPORTS)}")


def broker_dependent_settings(url: str) -> dict[str, Any]:
    """The settings that follow from the broker's URL scheme.

    On RabbitMQ the queues are quorum queues (replicated, and they survive a
    broker restart). Celery then turns off global QoS by itself
    (worker_detect_quorum_queues) and moves countdown/eta messages through
    RabbitMQ's native delayed delivery, which needs topic exchanges; quorum
    queues have no x-max-priority, so priorities are only a hint there.
    """
    redis = redis_urls.is_redis_broker(url)
    exchange_type = "direct" if redis else "topic"
    arguments = None if redis else {"x-queue-type": "quorum"}
    return {
        "broker_transport": _transport_for(url),
        "broker_transport_options": _redis_transport_options if redis else _amqp_transport_options,
        "task_queues": {
            name: {
                "exchange": name,
                "exchange_type": exchange_type,
                "routing_key": name,
                "queue_arguments": arguments,
            }
            for name in queues.QUEUES
        },
    }


def _transport_for(url: str) -> str | None:
    """redis:// and rediss:// get taskrelay's transport, Sentinel URLs its Sentinel
    variant; other schemes keep kombu's choice."""
    if redis_urls.is_sentinel(url):
        return _SENTINEL_TRANSPORT
    return _TRANSPORTS[_transport_choice] if redis_urls.is_direct_redis(url) else None


_broker_settings = broker_dependent_settings(broker_url)
broker_transport = _broker_settings["broker_transport"]
broker_transport_options = _broker_settings["broker_transport_options"]
task_queues = _broker_settings["task_queues"]
# Quorum queues refuse global QoS; Celery detects them and uses per-consumer QoS.
worker_detect_quorum_queues = True

# A task's result write (its state, record, dead letter: one script) is retried
# with backoff for this many seconds while Redis is down or stalled, so a Redis
# freeze delays a running task's end instead of failing it (docs/reliability.md).
# The web keeps a short bound of its own (webapp/services.py).
result_write_retry_s = float(os.environ.get("TASKRELAY_RESULT_WRITE_RETRY", "300"))
result_backend_transport_options = {
    "retry_policy": {
        "timeout": result_write_retry_s,
        "max_retries": None,
        "interval_start": 0.5,
        "interval_step": 0.5,
        "interval_max": 5.0,
    },
    "socket_connect_timeout": 2,
}
redis_socket_connect_timeout = 2
# A worker's result connection waits this long for a reply; a stall past it is
# retried (result_write_retry_s), so it only bounds one attempt.
redis_socket_timeout = float(os.environ.get("TASKRELAY_REDIS_SOCKET_TIMEOUT", "30"))
redis_retry_on_timeout = True
redis_backend_health_check_interval = 25

task_soft_time_limit = int(os.environ.get("TASKRELAY_TASK_SOFT_TIME_LIMIT", "300"))
task_time_limit = int(os.environ.get("TASKRELAY_TASK_TIME_LIMIT", "330"))

# Results carry the task name, arguments, worker and retry count, and live a day.
result_extended = True
result_expires = int(os.environ.get("TASKRELAY_RESULT_TTL", "86400"))

# A web request never waits long for a broker that is gone: it fails fast with
# 503 instead. Publishing retries twice within half a second, then gives up.
broker_connection_timeout = 2
broker_connection_retry_on_startup = True
broker_connection_max_retries = None
task_publish_retry_policy = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}

# Task events cost three PUBLISHes per task in the worker's main loop, a third of
# its drain rate (docs/benchmarks.md). Off unless asked for: Flower turns them on
# in the workers it watches (its --enable-events, on by default), so they are
# paid for only while someone looks.
worker_send_task_events = os.environ.get("TASKRELAY_TASK_EVENTS", "0") == "1"
# The "task-sent" event costs every POST /api/tasks one more Redis round trip
# (about a quarter of the web's submit rate, docs/benchmarks.md); Flower lists a
# task from its "task-received" event on, so it is off unless asked for.
task_send_sent_event = os.environ.get("TASKRELAY_TASK_SENT_EVENT", "0") == "1"

# Celery's two INFO lines per task (received, succeeded) are left out of the
# workers' logs unless asked for (tasks/celery_ext/task_log.py).
taskrelay_log_each_task = os.environ.get("TASKRELAY_LOG_EACH_TASK", "0") == "1"

# Task events go out in batches a few times a second (tasks/celery_ext/event_batching.py).
worker_consumer = "tasks.celery_ext.event_batching:Consumer"

# The task workers' pool, which Celery takes for `--pool prefork` as well: "inline"
# (the default) runs each task in the worker's own process with a keeper thread
# beside it, and an attempt that comes back after its worker died in a forked child
# (tasks/celery_ext/inline_pool.py); "prefork" hands each to a pool child (Celery's
# prefork pool without the event-loop registrations that change nothing,
# tasks/celery_ext/pool.py). docs/decisions.md, "The inline pool", says when to
# choose which.
WORKER_POOLS = {
    "inline": "tasks.celery_ext.inline_pool:TaskPool",
    "prefork": "tasks.celery_ext.pool:TaskPool",
}
DEFAULT_WORKER_POOL = "inline"
_pool_choice = os.environ.get("TASKRELAY_WORKER_POOL", "").strip() or DEFAULT_WORKER_POOL
if _pool_choice not in WORKER_POOLS:
    raise ValueError(
        f"TASKRELAY_WORKER_POOL={_pool_choice!r}: choose one of {', '.join(WORKER_POOLS)}"
    )
worker_pool = WORKER_POOLS[_pool_choice]

worker_hijack_root_logger = False
