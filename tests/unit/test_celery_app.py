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


@pytest.mark.parametrize(
    "result",
    [{"n": 1, "s": "naïve ☃"}, {"pair": (1, 2)}, 2**70, float("nan")],
    ids=["json", "tuple", "big-int", "nan"],
)
def test_a_stored_result_reads_back_as_the_serializer_wrote_it(result: object) -> None:
    backend = create_celery_app("redis://127.0.0.1:1/0").backend
    encoded = backend.encoded_meta("a-task", result, "SUCCESS")
    _, _, celerys = backend._encode({**backend.decode(encoded), "result": result})
    assert repr(backend.decode(encoded)["result"]) == repr(backend.decode(celerys)["result"])


def test_a_json_result_is_written_compact_and_another_by_the_serializer() -> None:
    backend = create_celery_app("redis://127.0.0.1:1/0").backend
    assert '"result":{"n":1}' in backend.encoded_meta("a-task", {"n": 1}, "SUCCESS")
    assert '"result": {"pair": [1, 2]}' in backend.encoded_meta(
        "a-task", {"pair": (1, 2)}, "SUCCESS"
    )
