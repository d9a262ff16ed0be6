"""The schedules section and the workflow view in a real Chromium, with a real scheduler."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from taskrelay import roles
from taskrelay.processes import Child
from tests.support import start_web, stop

pytestmark = pytest.mark.browser

# How long a run of a one-second schedule may take to show up, and a workflow's
# steps to finish, in milliseconds: far above what either needs.
LIVE_WAIT_MS = 20_000

# Records every state each step box of the graph shows, and its fill colour, so
# that a test sees the colours change without racing the page.
RECORD_STEP_BOXES = """
() => {
  window.seenBoxes = [];
  const graph = document.getElementById("workflow-graph");
  const record = () => {
    for (const box of graph.querySelectorAll("g.step-box")) {
      const fill = getComputedStyle(box.querySelector("rect")).fill;
      window.seenBoxes.push({step: box.dataset.step, state: box.dataset.state, fill: fill});
    }
  };
  record();
  new MutationObserver(record).observe(graph, {subtree: true, childList: true, attributes: true});
}
"""


@pytest.fixture
def scheduler(redis_url: str, log_dir: Path) -> Iterator[Child]:
    """One real scheduler process, as `taskrelay up` starts it."""
    child = Child(
        "scheduler-browser",
        roles.scheduler_argv(),
        log_dir / f"scheduler-browser-{os.getpid()}-{time.monotonic_ns()}.log",
        {"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"},
    )
    child.start()
    yield child
    stop(child)


def test_a_schedule_added_in_the_page_shows_its_runs_live_and_is_paused_and_deleted(
    page: Page, web: str, scheduler: Child
) -> None:
    name = f"browser-{uuid.uuid4().hex[:8]}"
    form = page.locator("#schedule-form")
    form.get_by_label("Schedule name").fill(name)
    form.get_by_label("Task to schedule").select_option("consume")
    form.get_by_label("Positional arguments (a JSON array)").fill("[7]")
    form.get_by_label("Or every so many seconds").fill("1")
    form.get_by_role("button", name="Add schedule").click()
    expect(page.locator("#schedule-form-status")).to_have_text(f"Added schedule {name}.")

    item = page.locator("li.schedule", has=page.locator(f'.task-name:text-is("{name}")'))
    expect(item.locator('[data-field="next-fire"]')).to_have_text(re.compile(r"^Next fire: \d{4}-"))
    # The scheduler fires it within a second or two, the worker runs it, and the
    # page shows the run with its state without a reload.
    expect(item.locator('.schedule-runs .state[data-state="SUCCESS"]').first).to_be_visible(
        timeout=LIVE_WAIT_MS
    )

    item.get_by_role("button", name=f"Pause schedule {name}").click()
    expect(item.get_by_role("button", name=f"Resume schedule {name}")).to_be_visible()
    expect(item.locator('[data-field="next-fire"]')).to_have_text("Next fire: none")
    schedule = httpx.get(f"{web}/api/schedules/{name}", timeout=10).json()
    assert schedule["enabled"] is False

    item.get_by_role("button", name=f"Delete schedule {name}").click()
    expect(item).to_have_count(0)
    assert httpx.get(f"{web}/api/schedules/{name}", timeout=10).status_code == 404


def test_a_bad_schedule_shows_the_api_error_next_to_its_field(page: Page) -> None:
    form = page.locator("#schedule-form")
    form.get_by_label("Schedule name").fill(f"browser-{uuid.uuid4().hex[:8]}")
    form.get_by_label("Cron expression (5 fields)").fill("not a cron")
    form.get_by_role("button", name="Add schedule").click()
    cron = form.get_by_label("Cron expression (5 fields)")
    expect(page.locator("#schedule-cron-error")).to_have_text(re.compile("cron"))
    expect(cron).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#schedule-form-status")).to_have_text(re.compile("^Not added"))


def submit_workflow(web: str, body: dict[str, Any]) -> str:
    answer = httpx.post(f"{web}/api/workflows", json=body, timeout=10)
    assert answer.status_code == 202, answer.text
    workflow_id: str = answer.json()["id"]
    return workflow_id


def test_the_workflow_graph_changes_colour_live_as_steps_finish(page: Page, web: str) -> None:
    # The recent list picks up a workflow submitted elsewhere on its own.
    quick = {"task": "long_task", "kwargs": {"steps": 1, "delay_s": 0}}
    quick_id = submit_workflow(web, {"type": "chain", "steps": [quick]})
    newest = page.locator("#workflow-list li.workflow").first
    expect(newest).to_have_attribute("data-workflow-id", quick_id, timeout=LIVE_WAIT_MS)

    step = {"task": "long_task", "kwargs": {"steps": 3, "delay_s": 0.4}, "immutable": True}
    workflow_id = submit_workflow(
        web, {"type": "chord", "steps": [step, step], "callback": {**step, "immutable": True}}
    )
    # Read the list at once rather than at its next refresh, so the graph opens
    # while the callback still waits.
    page.reload()
    expect(newest).to_have_attribute("data-workflow-id", workflow_id)
    expect(newest.locator(".steps")).to_have_text(re.compile(r"^\d/3 steps$"))
    newest.get_by_role("link", name=re.compile(f"^Workflow {workflow_id}, ")).click()
    expect(page).to_have_url(re.compile(f"/workflows/{workflow_id}$"))
    expect(page.locator("g.step-box")).to_have_count(3)
    page.evaluate(RECORD_STEP_BOXES)
    # The callback waits on both header steps: two arrows end at it.
    expect(page.locator('path.step-edge[data-to="2"]')).to_have_count(2)

    expect(page.locator("#workflow-state")).to_have_text("SUCCESS", timeout=LIVE_WAIT_MS)
    for index in range(3):
        expect(page.locator(f'g.step-box[data-step="{index}"]')).to_have_attribute(
            "data-state", "SUCCESS"
        )
    expect(page.locator("#workflow-status")).to_have_text("Finished: SUCCESS.")

    seen = page.evaluate("window.seenBoxes")
    callback = [box for box in seen if box["step"] == "2"]
    states = [box["state"] for box in callback]
    assert states[0] == "WAITING" and states[-1] == "SUCCESS", states
    fills = {box["state"]: box["fill"] for box in callback}
    assert fills["WAITING"] != fills["SUCCESS"], fills
    running = [box for box in seen if box["state"] in ("STARTED", "PROGRESS")]
    assert running, "no step was ever shown running"
    assert running[0]["fill"] not in (fills["WAITING"], fills["SUCCESS"])


def test_an_unknown_workflow_says_so(page: Page) -> None:
    page.goto(f"/workflows/{uuid.uuid4()}")
    expect(page.locator("#workflow-status")).to_have_text(re.compile("^No such workflow"))


def test_with_tokens_set_schedule_changes_need_the_token_typed_in_the_page(
    browser: Any, redis_url: str, log_dir: Path
) -> None:
    token = uuid.uuid4().hex
    child, base_url = start_web(redis_url, log_dir, {"TASKRELAY_API_TOKENS": token})
    context = browser.new_context(base_url=base_url)
    try:
        page = context.new_page()
        page.goto("/")
        name = f"browser-{uuid.uuid4().hex[:8]}"
        form = page.locator("#schedule-form")
        form.get_by_label("Schedule name").fill(name)
        form.get_by_label("Or every so many seconds").fill("3600")
        form.get_by_role("button", name="Add schedule").click()
        expect(page.locator("#schedule-form-status")).to_have_text(re.compile("^Not added"))
        assert httpx.get(f"{base_url}/api/schedules/{name}", timeout=10).status_code == 404

        page.get_by_label("API token").fill(token)
        form.get_by_role("button", name="Add schedule").click()
        expect(page.locator("#schedule-form-status")).to_have_text(f"Added schedule {name}.")
        item = page.locator("li.schedule", has=page.locator(f'.task-name:text-is("{name}")'))
        item.get_by_role("button", name=f"Pause schedule {name}").click()
        expect(item.get_by_role("button", name=f"Resume schedule {name}")).to_be_visible()
        item.get_by_role("button", name=f"Delete schedule {name}").click()
        expect(item).to_have_count(0)
        assert httpx.get(f"{base_url}/api/schedules/{name}", timeout=10).status_code == 404
    finally:
        context.close()
        stop(child)
