"""Celery settings for taskrelay, read from the environment.

Plain data: importing this module reads environment variables and nothing else.
Every number carries its unit in its name or in the comment beside it.
"""

import os

# The embedded Redis that `taskrelay up` starts listens here; any other Redis or
# Valkey is chosen with REDIS_URL (redis://, rediss://, with or without password).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6399/0"

# taskrelay keeps its own records, streams and pub/sub here.
taskrelay_redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)

broker_url = os.environ.get("CELERY_BROKER_URL", taskrelay_redis_url)
result_backend = os.environ.get("CELERY_RESULT_BACKEND", taskrelay_redis_url)

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
task_track_started = True

# Prefetch is a throughput lever measured in docs/benchmarks.md; prefetched
# messages stay unacknowledged, so they come back if the worker dies.
worker_prefetch_multiplier = int(os.environ.get("TASKRELAY_PREFETCH", "4"))

# Two queues: slow work can never delay pub/sub delivery.
task_default_queue = "tasks"
task_queues = {
    "tasks": {"exchange": "tasks", "routing_key": "tasks"},
    "relay": {"exchange": "relay", "routing_key": "relay"},
}
task_routes = {"taskrelay.relay.*": {"queue": "relay"}}
task_create_missing_queues = False

# A message not acknowledged within this many seconds goes back on the queue.
# It must be longer than the longest task plus its countdown (see
# docs/decisions.md); the hard time limit below keeps tasks well inside it.
visibility_timeout_s = int(os.environ.get("TASKRELAY_VISIBILITY_TIMEOUT", "3600"))
_redis_transport_options = {
    "visibility_timeout": visibility_timeout_s,
    "socket_connect_timeout": 2,
    "socket_timeout": 30,
    "retry_on_timeout": True,
    "health_check_interval": 25,
}
broker_transport_options = _redis_transport_options
result_backend_transport_options = {
    "retry_policy": {"timeout": 5.0},
    "socket_connect_timeout": 2,
}
redis_socket_connect_timeout = 2
redis_socket_timeout = 30
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

# Task events let Flower list tasks and workers.
worker_send_task_events = os.environ.get("TASKRELAY_TASK_EVENTS", "1") == "1"
task_send_sent_event = worker_send_task_events

worker_hijack_root_logger = False
