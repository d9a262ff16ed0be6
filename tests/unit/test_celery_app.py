"""The Celery app keeps taskrelay's result backends whatever the environment says."""

from __future__ import annotations

import pytest

from tasks.app_factory import create_celery_app
from tasks.celery_ext.result_backend import GuardedRedisBackend, PublishOnlyRedisBackend


def test_a_celery_result_backend_variable_does_not_swap_the_guarded_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Celery's own settings read CELERY_RESULT_BACKEND before any configured value.
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:1/0")
    worker_app = create_celery_app("redis://127.0.0.1:1/0")
    web_app = create_celery_app("redis://127.0.0.1:1/0", publish_only=True)
    assert type(worker_app.backend) is GuardedRedisBackend
    assert type(web_app.backend) is PublishOnlyRedisBackend


def test_a_result_backend_that_is_not_redis_is_celerys_own() -> None:
    app = create_celery_app("redis://127.0.0.1:1/0", result_backend="disabled")
    assert not isinstance(app.backend, GuardedRedisBackend)
