"""The public view of a task joins its record with Celery's raw result meta."""

from __future__ import annotations

from tasks import records

RECORD = {
    "task": "consume",
    "submitted_at": "2026-01-01T00:00:00+00:00",
    "args": "[1]",
    "kwargs": "{}",
}


def test_a_record_without_a_result_is_queued_never_pending() -> None:
    doc = records.document("t1", RECORD, None)
    assert doc["state"] == "QUEUED"
    assert doc["progress"] is None and doc["result"] is None and doc["error"] is None
    assert doc["args"] == [1]


def test_progress_is_read_from_a_progress_meta() -> None:
    meta = {"status": "PROGRESS", "result": {"current": 2, "total": 5, "message": "step 2 of 5"}}
    assert records.document("t1", RECORD, meta)["progress"] == {
        "current": 2,
        "total": 5,
        "message": "step 2 of 5",
    }


def test_a_failure_is_described_by_type_and_message_without_rebuilding_the_exception() -> None:
    meta = {
        "status": "FAILURE",
        "result": {
            "exc_type": "ValueError",
            "exc_module": "builtins",
            "exc_message": ["bad", "value"],
        },
        "traceback": "Traceback...",
        "date_done": "2026-01-01T00:00:01+00:00",
        "retries": 2,
    }
    doc = records.document("t1", RECORD, meta)
    assert doc["error"] == {
        "type": "ValueError",
        "message": "bad value",
        "traceback": "Traceback...",
    }
    assert doc["finished_at"] == "2026-01-01T00:00:01+00:00"
    assert doc["retries"] == 2


def test_an_unknown_celery_state_reads_as_queued() -> None:
    assert records.document("t1", RECORD, {"status": "WEIRD"})["state"] == "QUEUED"


def test_a_finished_task_whose_result_expired_keeps_its_state() -> None:
    record = {**RECORD, "state": "SUCCESS", "finished_at": "2026-01-01T00:00:02+00:00"}
    doc = records.document("t1", record, None)
    assert doc["state"] == "SUCCESS"
    assert doc["result_expired"] is True
    assert doc["finished_at"] == "2026-01-01T00:00:02+00:00"


def test_a_raw_meta_that_is_not_a_json_object_is_ignored() -> None:
    assert records.parse_meta(b"\x80\x04pickle") is None
    assert records.parse_meta(b"[1, 2]") is None
    assert records.parse_meta(b'{"status": "SUCCESS"}') == {"status": "SUCCESS"}
