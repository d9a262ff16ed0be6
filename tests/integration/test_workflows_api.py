"""Workflows over HTTP through Flask's client, against their own Redis and a real worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

import tests.workflow_tasks  # noqa: F401  (registers the steps' tasks for validation)
from taskrelay import sse_client
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from taskrelay.workflow_commands import workflow
from tasks import defaults, keys
from tasks.workflows import description
from tests.sse_reader import flask_lines
from tests.support import running_redis, start_web, start_worker, stop, wait_until
from webapp import create_app, idempotency
from webapp.tasks.request import fingerprint

# The worker loads the tasks the steps name.
WORKER_ENV = {"TASKRELAY_TASK_MODULES": "tests.workflow_tasks"}


@pytest.fixture(scope="module")
def wf_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # Its own Redis: a worker that lacks these tasks never takes a step's message.
    with running_redis(tmp_path_factory.mktemp("wf-redis"), durable=False) as server:
        yield server


@pytest.fixture(scope="module")
def wf_worker(wf_redis: EmbeddedRedis, log_dir: Path) -> Iterator[Child]:
    worker = start_worker("tasks", wf_redis.url, log_dir, concurrency=2, env=WORKER_ENV)
    yield worker
    stop(worker)


@pytest.fixture(scope="module")
def wf_app(wf_redis: EmbeddedRedis, wf_worker: Child) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "REDIS_URL": wf_redis.url})
    yield app
    app.extensions["taskrelay"].close()


@pytest.fixture
def client(wf_app: Flask) -> FlaskClient:
    return wf_app.test_client()


@pytest.fixture
def wf_client(wf_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(wf_redis.url, decode_responses=True)
    yield client
    client.close()


def step(task: str, *args: Any, immutable: bool = False, **kwargs: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"task": task, "args": list(args), "kwargs": kwargs}
    if immutable:
        node["immutable"] = True
    return node


def chain(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"type": "chain", "steps": list(steps)}


def group(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"type": "group", "steps": list(steps)}


def chord(callback: dict[str, Any], *steps: dict[str, Any]) -> dict[str, Any]:
    return {"type": "chord", "steps": list(steps), "callback": callback}


def submit(client: FlaskClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post("/api/workflows", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    doc: dict[str, Any] = response.get_json()
    assert response.headers["Location"] == f"/api/workflows/{doc['id']}"
    return doc


def wait_for(client: FlaskClient, workflow_id: str, *states: str, timeout_s: float = 30) -> Any:
    def probe() -> dict[str, Any] | None:
        doc: dict[str, Any] = client.get(f"/api/workflows/{workflow_id}").get_json()
        return doc if doc["state"] in states else None

    return wait_until(probe, timeout_s=timeout_s, what=f"workflow {workflow_id} to reach {states}")


def run(client: FlaskClient, body: dict[str, Any], *states: str) -> dict[str, Any]:
    doc: dict[str, Any] = wait_for(client, submit(client, body)["id"], *(states or ("SUCCESS",)))
    return doc


def test_a_chain_passes_each_result_to_the_next_step_as_its_first_argument(
    client: FlaskClient,
) -> None:
    accepted = submit(client, chain(step("add", 1, 2), step("add", 10), step("add", y=100)))
    assert accepted["state"] == "QUEUED"
    assert [s["state"] for s in accepted["steps"]] == ["QUEUED", "WAITING", "WAITING"]
    done = wait_for(client, accepted["id"], "SUCCESS")
    assert done["result"] == 113
    assert [s["result"] for s in done["steps"]] == [3, 13, 113]
    assert done["steps_finished"] == done["steps_total"] == 3
    assert [s["depends_on"] for s in done["steps"]] == [[], [0], [1]]
    # Each step is an ordinary task, with its record.
    second = client.get(f"/api/tasks/{done['steps'][1]['task_id']}").get_json()
    assert (second["task"], second["state"], second["args"]) == ("add", "SUCCESS", [3, 10])


def test_an_immutable_step_ignores_the_previous_result(client: FlaskClient) -> None:
    body = chain(step("add", 1, 2), step("add", 5, 5, immutable=True), step("add", y=1))
    assert run(client, body)["result"] == 11


def test_a_group_s_result_is_the_list_of_its_steps_results_as_nested(client: FlaskClient) -> None:
    body = group(step("add", 1, 1), step("add", 2, 2), chain(step("add", 3, 3), step("add", y=1)))
    assert run(client, body)["result"] == [2, 4, 7]


def test_a_chord_in_a_chain_gets_every_header_result_once_and_passes_its_own_on(
    client: FlaskClient,
) -> None:
    header = [step("add", y=1), step("add", y=2), group(step("add", y=3), step("add", y=4))]
    body = chain(step("add", 1, 1), chord(step("total"), *header), step("add", y=1000))
    done = run(client, body)
    # 1 + 1 = 2; the header: 3, 4, [5, 6]; the callback: 18; then 1018.
    assert done["result"] == 1018
    callback = next(s for s in done["steps"] if s["path"] == "steps[1].callback")
    assert callback["depends_on"] == [1, 2, 3, 4]
    task = client.get(f"/api/tasks/{callback['task_id']}").get_json()
    assert task["args"] == [[3, 4, [5, 6]]]


def test_a_step_that_always_fails_ends_the_workflow_naming_it_and_its_dead_letter(
    client: FlaskClient, wf_client: redis.Redis
) -> None:
    body = chord(step("total"), step("add", 1), step("always_fails", "boom"))
    done = run(client, body, "FAILURE")
    failed = done["failed_step"]
    assert (failed["index"], failed["path"], failed["task"]) == (1, "steps[1]", "always_fails")
    assert failed["error"]["type"] == "DeliberateFailure"
    assert failed["dead_letter"] is True
    assert failed["links"] == {
        "task": f"/api/tasks/{failed['task_id']}",
        "dead_letter_replay": f"/api/deadletters/{failed['task_id']}/replay",
    }
    callback = done["steps"][2]
    assert callback["state"] == "SKIPPED"
    assert not wf_client.exists(keys.task_record(callback["task_id"]))  # never sent
    assert done["result"] is None


def test_a_failed_step_stops_a_chain_before_its_next_step(
    client: FlaskClient, wf_client: redis.Redis
) -> None:
    body = chain(step("add", 1), step("always_fails", immutable=True), step("add", y=1))
    done = run(client, body, "FAILURE")
    assert [s["state"] for s in done["steps"]] == ["SUCCESS", "FAILURE", "SKIPPED"]
    assert done["failed_step"]["index"] == 1
    assert not wf_client.exists(keys.task_record(done["steps"][2]["task_id"]))


def test_a_result_that_does_not_fit_the_next_step_fails_the_workflow_at_that_step(
    client: FlaskClient,
) -> None:
    done = run(client, chain(step("add", 1, 2), step("total")), "FAILURE")
    failed = done["failed_step"]
    assert failed["path"] == "steps[1]"
    assert failed["error"]["type"] == "StepNotSendable"
    assert "'values' must be an array" in failed["error"]["message"]
    assert failed["links"] == {}
    assert done["steps"][1]["state"] == "FAILURE"


def test_a_step_that_retries_stays_in_its_workflow(client: FlaskClient) -> None:
    body = chain(step("flaky", failures=1), step("add", 1, 2, immutable=True))
    done = run(client, body)
    assert done["result"] == 3
    assert done["steps"][0]["retries"] == 1


def test_revoking_a_workflow_mid_way_starts_no_step_after_the_answer(
    client: FlaskClient, tmp_path: Path
) -> None:
    def slow(name: str) -> dict[str, Any]:
        return step("record_step", str(tmp_path), name, seconds=1.0, immutable=True)

    names = [f"s{n}" for n in range(4)]
    workflow_id = submit(client, chain(*[slow(name) for name in names]))["id"]
    wait_until(lambda: (tmp_path / "s1.started").exists(), what="the second step to start")
    response = client.delete(f"/api/workflows/{workflow_id}")
    answered = time.time()
    assert response.status_code == 202
    assert response.get_json()["state"] == "REVOKED"
    time.sleep(2.5)  # more than a step takes: a step sent after the answer would have started
    starts = [
        float(line.split()[1])
        for name in names
        if (tmp_path / f"{name}.started").exists()
        for line in (tmp_path / f"{name}.started").read_text().splitlines()
    ]
    assert starts and max(starts) < answered
    doc = client.get(f"/api/workflows/{workflow_id}").get_json()
    assert doc["state"] == "REVOKED"
    assert [s["state"] for s in doc["steps"]] == ["SUCCESS", "REVOKED", "REVOKED", "REVOKED"]
    assert client.delete(f"/api/workflows/{workflow_id}").status_code == 202


def test_a_finished_workflow_cannot_be_revoked(client: FlaskClient) -> None:
    done = run(client, chain(step("add", 1)))
    response = client.delete(f"/api/workflows/{done['id']}")
    assert response.status_code == 409
    assert "SUCCESS" in response.get_json()["error"]["message"]


def test_an_unknown_workflow_is_404_everywhere(client: FlaskClient) -> None:
    for response in (
        client.get("/api/workflows/nope"),
        client.get("/api/workflows/nope/events"),
        client.delete("/api/workflows/nope"),
        client.get(f"/api/workflows/{'x' * 100}"),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def too_deep() -> dict[str, Any]:
    body = step("add", 1)
    for _ in range(description.MAX_DEPTH + 1):
        body = chain(body)
    return body


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (chain(step("add", 1), step("nope")), 404, "steps[1].task"),
        (chain(step("add", 1), group(step("add", y="w"))), 400, "steps[1].steps[0].kwargs.y"),
        (chord(step("add", 1, 2), step("add", 1)), 400, "callback.args"),
        (group(*[step("add", n) for n in range(description.MAX_STEPS + 1)]), 413, "steps[400]"),
        (too_deep(), 400, ".".join(["steps[0]"] * description.MAX_DEPTH)),
        (step("add", 1), 400, "type"),
        ({"type": "chain", "steps": [], "extra": 1}, 400, "extra"),
    ],
)
def test_a_bad_description_is_refused_with_the_step_s_place_and_nothing_is_enqueued(
    client: FlaskClient, wf_client: redis.Redis, body: dict[str, Any], status: int, field: str
) -> None:
    def enqueued() -> tuple[int, set[str]]:
        return wf_client.zcard(keys.TASK_INDEX), set(wf_client.keys(f"{keys.PREFIX}workflow:*"))

    before = enqueued()
    response = client.post("/api/workflows", json=body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert enqueued() == before


def test_a_body_over_the_size_limit_is_413(client: FlaskClient) -> None:
    huge = chain(step("add", 1), step("record_step", "x" * 2_000_000, "n", immutable=True))
    assert client.post("/api/workflows", json=huge).status_code == 413


def test_an_idempotency_key_answers_the_first_workflow_and_refuses_another_body(
    client: FlaskClient,
) -> None:
    body = chain(step("add", 4, 4))
    first = submit(client, body, **{"Idempotency-Key": "wf-key-1"})
    again = client.post("/api/workflows", json=body, headers={"Idempotency-Key": "wf-key-1"})
    assert again.status_code == 200
    assert again.get_json()["id"] == first["id"]
    other = client.post(
        "/api/workflows", json=chain(step("add", 5)), headers={"Idempotency-Key": "wf-key-1"}
    )
    assert other.status_code == 409
    assert other.get_json()["error"]["field"] == "Idempotency-Key"


def test_a_key_claimed_by_a_request_that_failed_is_taken_over_under_the_same_id(
    client: FlaskClient, wf_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a request leaves when Redis took its claim and then stopped answering."""
    key, body, first_id = str(uuid.uuid4()), chain(step("add", 2, 3)), str(uuid.uuid4())
    redis_key = keys.workflow_idempotency(key)
    claimed = idempotency.claim_first(
        wf_client, redis_key, fingerprint(body), first_id, "workflow_id"
    )
    assert claimed is None
    # Still in flight, the claim's request may be storing its workflow: try again.
    in_flight = client.post("/api/workflows", json=body, headers={"Idempotency-Key": key})
    assert in_flight.status_code == 409, in_flight.get_json()
    monkeypatch.setattr(idempotency, "IN_FLIGHT_S", 0.0)
    taken_over = submit(client, body, **{"Idempotency-Key": key})
    assert taken_over["id"] == first_id
    assert wait_for(client, first_id, "SUCCESS")["result"] == 5
    again = client.post("/api/workflows", json=body, headers={"Idempotency-Key": key})
    assert (again.status_code, again.get_json()["id"]) == (200, first_id)


def test_the_event_stream_runs_from_the_current_state_to_the_end(
    client: FlaskClient, tmp_path: Path
) -> None:
    first = step("record_step", str(tmp_path), "first", value=1, seconds=0.3)
    body = chain(first, step("add", y=2), step("add", y=3))
    workflow_id = submit(client, body)["id"]
    response = client.get(f"/api/workflows/{workflow_id}/events", buffered=False)
    assert response.mimetype == "text/event-stream"
    events = [(e.event, json.loads(e.data)) for e in sse_client.parse(flask_lines(response)())]
    response.close()
    assert events[0][0] == "workflow"
    assert events[0][1]["state"] in ("QUEUED", "RUNNING")
    assert events[-1][0] == "workflow"
    assert events[-1][1]["state"] == "SUCCESS"
    assert events[-1][1]["result"] == 6
    finished = [
        data["index"] for name, data in events if name == "step" and data["state"] == "SUCCESS"
    ]
    assert finished == [0, 1, 2]
    assert {name for name, _ in events} <= {"workflow", "step"}
    # A stream opened after the end gets the final document, and ends.
    again = client.get(f"/api/workflows/{workflow_id}/events", buffered=False)
    assert [e.event for e in sse_client.parse(flask_lines(again)())] == ["workflow"]
    again.close()


def test_metrics_count_workflows_by_outcome_and_their_steps(client: FlaskClient) -> None:
    def figures() -> dict[str, float]:
        text = client.get("/metrics").get_data(as_text=True)
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("taskrelay_workflow")
        }

    before = figures()
    run(client, group(step("add", 1), step("add", 2), step("add", 3)))
    after = figures()

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert grew("taskrelay_workflows_submitted_total") == 1
    assert grew('taskrelay_workflows_ended_total{state="SUCCESS"}') == 1
    assert grew('taskrelay_workflow_steps_bucket{le="2"}') == 0
    assert grew('taskrelay_workflow_steps_bucket{le="5"}') == 1
    assert grew("taskrelay_workflow_steps_sum") == 3
    assert "taskrelay_workflows_unfinished" in after


def recent(client: FlaskClient, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/workflows{query}")
    assert response.status_code == 200, response.get_json()
    listed: list[dict[str, Any]] = response.get_json()["workflows"]
    return listed


def test_the_recent_list_shows_submitted_workflows_newest_first_with_their_state(
    client: FlaskClient,
) -> None:
    succeeded = run(client, chain(step("add", 1, 2), step("add", 3)))
    failed = run(client, chain(step("always_fails", "boom"), step("add", 1)), "FAILURE")
    newest = submit(client, chain(step("add", 4, 4)))
    wait_for(client, newest["id"], "SUCCESS")
    listed = recent(client, "?limit=3")
    assert [entry["id"] for entry in listed] == [newest["id"], failed["id"], succeeded["id"]]
    assert [entry["state"] for entry in listed] == ["SUCCESS", "FAILURE", "SUCCESS"]
    assert [(e["steps_finished"], e["steps_total"]) for e in listed] == [(1, 1), (0, 2), (2, 2)]
    assert listed[1]["submitted_at"] == failed["submitted_at"]
    assert listed[0]["links"]["self"] == f"/api/workflows/{newest['id']}"
    assert "steps" not in listed[0]  # a summary, not the whole document


def test_the_recent_list_takes_a_limit_within_its_bounds(client: FlaskClient) -> None:
    newest = submit(client, chain(step("add", 1)))
    assert [entry["id"] for entry in recent(client, "?limit=1")] == [newest["id"]]
    assert len(recent(client)) > 1
    for bad in ("0", "51", "x"):
        response = client.get(f"/api/workflows?limit={bad}")
        assert response.status_code == 400
        assert response.get_json()["error"]["field"] == "limit"


def test_the_index_of_workflows_keeps_only_the_newest(
    client: FlaskClient, wf_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "WORKFLOW_INDEX_MAX_ENTRIES", 2)
    ids = [submit(client, chain(step("add", n)))["id"] for n in range(3)]
    assert wf_client.zcard(keys.WORKFLOW_INDEX) == 2
    assert [entry["id"] for entry in recent(client)] == ids[:0:-1]
    # The trimmed workflow itself is still there, only no longer listed.
    assert client.get(f"/api/workflows/{ids[0]}").status_code == 200


def test_the_openapi_document_describes_workflows_with_their_limits(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert {"/api/workflows", "/api/workflows/{workflow_id}"} <= set(doc["paths"])
    described = doc["components"]["schemas"]["WorkflowDescription"]
    assert described["properties"]["steps"]["maxItems"] == description.MAX_STEPS
    assert described["properties"]["type"]["enum"] == list(description.KINDS)
    assert "add" in doc["components"]["schemas"]["WorkflowTaskStep"]["properties"]["task"]["enum"]
    assert "413" in doc["paths"]["/api/workflows"]["post"]["responses"]
    (limit,) = doc["paths"]["/api/workflows"]["get"]["parameters"]
    assert (limit["name"], limit["schema"]["maximum"]) == ("limit", 50)


@pytest.fixture(scope="module")
def wf_web(wf_redis: EmbeddedRedis, wf_worker: Child, log_dir: Path) -> Iterator[str]:
    child, base_url = start_web(wf_redis.url, log_dir, env=WORKER_ENV)
    yield base_url
    stop(child)


def test_the_cli_submits_a_workflow_and_follows_it_with_a_bar_to_its_outcome(
    wf_web: str, tmp_path: Path
) -> None:
    def submit_file(body: dict[str, Any]) -> Result:
        path = tmp_path / "workflow.json"
        path.write_text(json.dumps(body))
        return CliRunner().invoke(workflow, ["submit", str(path), "--wait", "--url", wf_web])

    done = submit_file(chain(step("add", 1, 2), group(step("add", y=1), step("add", y=2))))
    assert done.exit_code == 0, done.output
    workflow_id, outcome = done.stdout.strip().splitlines()
    assert json.loads(outcome) == {
        "id": workflow_id,
        "state": "SUCCESS",
        "result": [4, 5],
        "failed_step": None,
    }
    assert workflow_id[:8] in done.stderr  # the bar's label (without a terminal, no bar)
    failed = submit_file(chain(step("always_fails")))
    assert failed.exit_code == 1
    assert json.loads(failed.stdout.strip().splitlines()[-1])["failed_step"]["index"] == 0
    refused = submit_file(chain(step("nope")))
    assert refused.exit_code == 1
    assert "404: unknown task 'nope'" in refused.output


def test_an_unreachable_broker_is_503_at_once_and_leaves_no_workflow(
    wf_redis: EmbeddedRedis, wf_client: redis.Redis
) -> None:
    # A broker apart from REDIS_URL: the record goes first, and is undone.
    app = create_app(
        {"TESTING": True, "REDIS_URL": wf_redis.url, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}
    )
    key = str(uuid.uuid4())

    def stored() -> tuple[int, set[str], dict[str, str]]:
        return (
            wf_client.zcard(keys.TASK_INDEX),
            set(wf_client.keys(f"{keys.PREFIX}workflow*")),
            wf_client.hgetall(keys.METRICS_WORKFLOWS),
        )

    before = stored()
    started = time.monotonic()
    try:
        response = app.test_client().post(
            "/api/workflows",
            json=chain(step("add", 1), step("add")),
            headers={"Idempotency-Key": key},
        )
    finally:
        app.extensions["taskrelay"].close()
    assert response.status_code == 503
    assert time.monotonic() - started < 2.0
    assert int(response.headers["Retry-After"]) > 0
    assert stored() == before
