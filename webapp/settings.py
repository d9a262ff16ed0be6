"""The web's settings: defaults here, then TASKRELAY_* variables, then test overrides."""

from __future__ import annotations

import os
from typing import Any

from flask import Config

import celeryconfig
from tasks import redis_urls

# Largest request body accepted, in bytes; a larger one is 413.
MAX_BODY_BYTES = 1_048_576
# How many tasks GET /api/tasks returns at most, and by default.
TASK_LIST_MAX = 500
TASK_LIST_DEFAULT = 50
# A countdown or eta further away than this is refused: the task's record and
# result must outlive the wait (tasks.defaults.TASK_RECORD_TTL_S is a day).
MAX_DELAY_S = 12 * 3600
# Seconds between SSE keep-alive comments; also how often a stream re-reads state.
SSE_HEARTBEAT_S = 15.0
# What a 503 tells the caller to wait before trying again, in seconds.
RETRY_AFTER_S = 2


def defaults() -> dict[str, Any]:
    return {
        "REDIS_URL": redis_urls.or_default(
            os.environ.get("REDIS_URL"), celeryconfig.DEFAULT_REDIS_URL
        ),
        # Empty means REDIS_URL, as in celeryconfig (webapp/services.py resolves it).
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", ""),
        "CELERY_RESULT_BACKEND": os.environ.get("CELERY_RESULT_BACKEND", ""),
        "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
        "TASK_LIST_MAX": TASK_LIST_MAX,
        "TASK_LIST_DEFAULT": TASK_LIST_DEFAULT,
        "MAX_DELAY_S": MAX_DELAY_S,
        "SSE_HEARTBEAT_S": SSE_HEARTBEAT_S,
        "RETRY_AFTER_S": RETRY_AFTER_S,
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
