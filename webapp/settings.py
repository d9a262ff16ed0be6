"""The web's settings: defaults here, then TASKRELAY_* variables, then test overrides."""

from __future__ import annotations

import os
from typing import Any

from flask import Config

import celeryconfig
from tasks import redis_urls
from tasks.channels import bounds as channel_bounds
from webapp import gunicorn_conf

# Largest request body accepted, in bytes; a larger one is 413.
MAX_BODY_BYTES = 1_048_576
# How many tasks GET /api/tasks returns at most, and by default.
TASK_LIST_MAX = 500
TASK_LIST_DEFAULT = 50
# A countdown or eta further away than this is refused: the task's record and
# result must outlive the wait (tasks.defaults.TASK_RECORD_TTL_S is a day).
MAX_DELAY_S = 12 * 3600
# Countdown/eta tasks accepted and not yet started, in all: each waits in a
# worker's memory until due, so past this a delayed submit is 429 (tasks/delayed.py).
MAX_DELAYED_TASKS = 1_000
# Seconds between SSE keep-alive comments; also how often a stream re-reads state.
SSE_HEARTBEAT_S = 15.0
# What a 503 tells the caller to wait before trying again, in seconds.
RETRY_AFTER_S = 2
# Channel SSE streams one web process holds at most, in all and per client address
# (as webapp/limits.py tells clients apart): past them a new stream is 503 or 429.
# The total defaults to this share of what one gunicorn worker serves at once
# (worker_connections under gevent, 1,000 by default: 800 streams; threads under
# gthread), so the rest always answer the API, however many streams are asked for.
SSE_STREAMS_SHARE = 0.8
SSE_MAX_STREAMS_PER_CLIENT = 100
# Redis connections a web process's channel hub opens at most (one holds its
# subscription, the rest serve the streams' reads), and how long a read waits for
# one, in seconds, before it fails: a new stream is then 503, a live one retries
# and ends with a reconnect hint. Every read a stream makes is bounded
# (tasks/channels/recent.py), so none holds a connection for long, and a burst of
# streams cannot pin the pool beyond this wait.
SSE_REDIS_CONNECTIONS = 64
SSE_REDIS_WAIT_S = 2.0
# Durable accept (webapp/durable_accept.py): replicas that must confirm a task's or a
# channel message's write before its 202 (0: no wait, no extra round trip), and how
# long WAIT may take, in milliseconds, before the answer is 503.
SUBMIT_REPLICAS = 0
SUBMIT_REPLICAS_TIMEOUT_MS = 1_000
# How many channels GET /api/channels answers at most per page, and by default.
CHANNEL_LIST_MAX = 1_000
CHANNEL_LIST_DEFAULT = 100


def defaults() -> dict[str, Any]:
    return {
        "REDIS_URL": redis_urls.from_environment(os.environ, celeryconfig.DEFAULT_REDIS_URL),
        # Empty means REDIS_URL, as in celeryconfig (webapp/services.py resolves it).
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", ""),
        "CELERY_RESULT_BACKEND": os.environ.get("CELERY_RESULT_BACKEND", ""),
        "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
        "TASK_LIST_MAX": TASK_LIST_MAX,
        "TASK_LIST_DEFAULT": TASK_LIST_DEFAULT,
        "MAX_DELAY_S": MAX_DELAY_S,
        "MAX_DELAYED_TASKS": MAX_DELAYED_TASKS,
        "SSE_HEARTBEAT_S": SSE_HEARTBEAT_S,
        "RETRY_AFTER_S": RETRY_AFTER_S,
        "SUBMIT_REPLICAS": SUBMIT_REPLICAS,
        "SUBMIT_REPLICAS_TIMEOUT_MS": SUBMIT_REPLICAS_TIMEOUT_MS,
        # Channels: what each keeps, for how long, how many, how large a message.
        "CHANNEL_RETENTION": channel_bounds.DEFAULT_RETENTION,
        "CHANNEL_RETENTION_BYTES": channel_bounds.DEFAULT_RETENTION_BYTES,
        "CHANNEL_IDLE_TTL_S": channel_bounds.DEFAULT_IDLE_TTL_S,
        "CHANNEL_MAX_CHANNELS": channel_bounds.DEFAULT_MAX_CHANNELS,
        "CHANNEL_MESSAGE_MAX_BYTES": channel_bounds.DEFAULT_MESSAGE_MAX_BYTES,
        "CHANNEL_RECENT_MESSAGES": channel_bounds.DEFAULT_RECENT_MESSAGES,
        "CHANNEL_LIST_MAX": CHANNEL_LIST_MAX,
        "CHANNEL_LIST_DEFAULT": CHANNEL_LIST_DEFAULT,
        "SSE_MAX_STREAMS": sse_max_streams(),
        "SSE_MAX_STREAMS_PER_CLIENT": SSE_MAX_STREAMS_PER_CLIENT,
        "SSE_REDIS_CONNECTIONS": SSE_REDIS_CONNECTIONS,
        "SSE_REDIS_WAIT_S": SSE_REDIS_WAIT_S,
        # Comma-separated bearer tokens; empty means the API needs no credentials.
        "API_TOKENS": "",
        # Comma-separated tokens that may only read. Set, every read needs a token
        # too (one of these, or an API token); empty leaves reads open. It needs
        # API_TOKENS: reads closed and writes open would be no protection.
        "API_TOKENS_READ": "",
        # Per-client limit on POST and DELETE under /api/, such as "100/second";
        # empty means no limit.
        "RATE_LIMIT": "",
        "FLOWER_URL": "http://127.0.0.1:5555/",
    }


def sse_max_streams() -> int:
    """SSE_STREAMS_SHARE of the requests one gunicorn worker serves at once (gunicorn_conf)."""
    room = (
        gunicorn_conf.threads
        if gunicorn_conf.worker_class == "gthread"
        else gunicorn_conf.worker_connections
    )
    return max(1, int(room * SSE_STREAMS_SHARE))


ENV_PREFIX = "TASKRELAY"


def load_environment(config: Config) -> None:
    """Apply TASKRELAY_* variables: numbers and lists as JSON, text settings as given.

    Flask's ``from_prefixed_env`` parses every value as JSON when it can, which
    would turn a token such as ``12345`` into a number; a setting whose default
    is text keeps the variable's exact text.
    """
    config.from_prefixed_env(ENV_PREFIX)
    prefix = f"{ENV_PREFIX}_"
    for name, value in os.environ.items():
        key = name.removeprefix(prefix)
        if name.startswith(prefix) and isinstance(defaults().get(key), str):
            config[key] = value
