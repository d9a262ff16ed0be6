"""The dashboard in a real Chromium: submit, watch, revoke, publish, reconnect, reload."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from taskrelay import roles
from taskrelay.processes import Child
from taskrelay.waiting import free_port
from tests.support import log_tail, stop, wait_until

pytestmark = pytest.mark.browser

# Records every state and bar value a task row shows, so that a test can check
# that the bar moved through the middle without racing the page.
RECORD_TASK_ROWS = """
() => {
  window.seenRows = [];
  const list = document.getElementById("task-rows");
  const record = () => {
    for (const row of list.querySelectorAll("tr.task-row")) {
      const bar = row.querySelector('[data-field="bar"]');
      window.seenRows.push({id: row.dataset.taskId, state: row.dataset.state, value: bar.value});
    }
  };
  new MutationObserver(record).observe(list, {subtree: true, childList: true, attributes: true});
}
"""


def task_row(page: Page, task_id: str) -> Locator:
    return page.locator(f'tr.task-row[data-task-id="{task_id}"]')


def open_task_page(page: Page, task_id: str) -> None:
    """Follow the row's link to the task's own page."""
    task_row(page, task_id).get_by_role("link", name=task_id[:8], exact=True).click()
    expect(page).to_have_url(re.compile(f"/tasks/{task_id}$"))


def submitted_task_id(page: Page, task: str) -> str:
    status = page.locator("#submit-status")
    expect(status).to_have_text(re.compile(rf"^Submitted {task} as [0-9a-f]{{8}}\."))
    short_id = status.inner_text().split(" as ")[1].rstrip(".")
    link = page.locator(f'[data-field="link"]:text-is("{short_id}")')
    row = page.locator("tr.task-row", has=link)
    task_id: str = row.get_attribute("data-task-id") or ""
    assert task_id.startswith(short_id)
    return task_id


def choose_task(page: Page, task: str) -> None:
    page.get_by_label("Task", exact=True).select_option(task)


def unique_channel() -> str:
    return f"browser.{uuid.uuid4().hex[:10]}"


def messages_shown(page: Page) -> list[Any]:
    texts = page.locator("#channel-messages li .message-data").all_inner_texts()
    return [json.loads(text) for text in texts]


def test_the_long_task_fills_its_progress_bar_to_100_and_shows_its_result(page: Page) -> None:
    page.evaluate(RECORD_TASK_ROWS)
    choose_task(page, "long_task")
    page.get_by_label("steps").fill("4")
    page.get_by_label("delay_s").fill("0.5")
    page.get_by_role("button", name="Submit task").click()
    task_id = submitted_task_id(page, "long_task")

    row = task_row(page, task_id)
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS")
    bar = row.locator('[data-field="bar"]')
    expect(bar).to_have_js_property("value", 100)
    expect(row.locator('[data-field="progress-text"]')).to_have_text(re.compile(r"^100%"))
    expect(row.get_by_role("button", name=re.compile("^Revoke"))).to_be_hidden()

    seen = page.evaluate("window.seenRows")
    middle = [s for s in seen if s["id"] == task_id and s["state"] == "PROGRESS"]
    assert any(0 < s["value"] < 100 for s in middle), "the bar never showed progress in between"

    open_task_page(page, task_id)
    result = page.locator('[data-field="result"]')
    expect(result).to_be_visible()
    assert json.loads(result.inner_text()) == {"steps": 4}


def test_a_bad_value_shows_the_api_error_next_to_its_field(page: Page) -> None:
    expect(page.locator("#task-table")).to_have_attribute("aria-busy", "false")
    rows_before = page.locator("tr.task-row").count()
    choose_task(page, "long_task")
    steps = page.get_by_label("steps")
    steps.fill("0")
    page.get_by_role("button", name="Submit task").click()

    error = page.locator("#param-long_task-steps-error")
    expect(error).to_have_text("'steps' must be at least 1")
    expect(steps).to_have_attribute("aria-invalid", "true")
    expect(steps).to_be_focused()
    expect(page.locator("#submit-status")).to_have_text(re.compile("^Not submitted"))
    # The error is part of the field's description, so a screen reader reads it too.
    expect(steps).to_have_accessible_description(re.compile("must be at least 1"))

    steps.fill("many")
    page.get_by_role("button", name="Submit task").click()
    expect(error).to_have_text("'steps' must be an integer, got string")
    assert page.locator("tr.task-row").count() == rows_before

    steps.fill("2")
    page.get_by_label("delay_s").fill("0")
    page.get_by_role("button", name="Submit task").click()
    submitted_task_id(page, "long_task")
    expect(error).to_be_hidden()
    expect(steps).not_to_have_attribute("aria-invalid", "true")


def test_a_queued_task_is_revoked_from_its_row(page: Page, web: str) -> None:
    choose_task(page, "consume")
    page.get_by_label("number").fill("3")
    page.get_by_label("Delay before it may run, in seconds").fill("120")
    page.get_by_role("button", name="Submit task").click()
    task_id = submitted_task_id(page, "consume")

    row = task_row(page, task_id)
    expect(row.locator('[data-field="state"]')).to_have_text("QUEUED")
    row.get_by_role("button", name=f"Revoke consume {task_id[:8]}").click()

    expect(row.locator('[data-field="state"]')).to_have_text("REVOKED")
    expect(row.get_by_role("button", name=re.compile("^Revoke"))).to_be_hidden()
    assert httpx.get(f"{web}/api/tasks/{task_id}", timeout=10).json()["state"] == "REVOKED"


def test_a_published_message_appears_in_the_channel_view(page: Page) -> None:
    channel = unique_channel()
    page.get_by_label("Channel to watch").fill(channel)
    page.get_by_role("button", name="Watch", exact=True).click()
    expect(page.locator("#watch-status")).to_have_text(f"Live: watching {channel}.")

    page.get_by_label("Channel", exact=True).fill(channel)
    page.get_by_label("Message (JSON, or plain text)").fill('{"greeting": "hello"}')
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#publish-status")).to_have_text(re.compile(f"^Published .* on {channel}"))

    expect(page.locator("#channel-messages li")).to_have_count(1)
    assert messages_shown(page) == [{"greeting": "hello"}]
    listed = page.locator("#channel-rows tr", has=page.locator(f'th:text-is("{channel}")'))
    expect(listed.locator("td").first).to_have_text("1")


def test_a_bad_channel_name_shows_the_api_error_next_to_the_field(page: Page) -> None:
    name_field = page.get_by_label("Channel", exact=True)
    name_field.fill("-not allowed")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#publish-channel-error")).to_be_visible()
    expect(name_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#publish-status")).to_have_text(re.compile("^Not published"))


def start_web_on(port: int, redis_url: str, log_dir: Path) -> Child:
    """A real gunicorn on a given port, so that it can be restarted at the same address."""
    child = Child(
        f"web-{port}",
        roles.web_argv(f"127.0.0.1:{port}"),
        log_dir / f"web-{port}.log",
        {"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"},
    )
    child.start()

    def healthy() -> bool:
        if child.exit_code() is not None:
            raise AssertionError(f"gunicorn exited:\n{log_tail(child.log_path)}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout_s=60, what=f"gunicorn on port {port}")
    return child


def test_the_channel_view_resumes_after_the_web_restarts_without_gap_or_duplicate(
    page: Page, web: str, redis_url: str, log_dir: Path
) -> None:
    channel = unique_channel()
    port = free_port()
    own_web = start_web_on(port, redis_url, log_dir)
    try:

        def publish(n: int) -> None:
            # Through the session's other web process, which stays up throughout.
            response = httpx.post(
                f"{web}/api/channels/{channel}/messages", json={"data": {"n": n}}, timeout=10
            )
            assert response.status_code == 202

        page.goto(f"http://127.0.0.1:{port}/?channel={channel}")
        expect(page.locator("#watch-status")).to_have_text(f"Live: watching {channel}.")
        publish(1)
        expect(page.locator("#channel-messages li")).to_have_count(1)

        stop(own_web)
        expect(page.locator("#watch-status")).to_have_text(re.compile("reconnecting"))
        publish(2)
        publish(3)
        own_web = start_web_on(port, redis_url, log_dir)

        expect(page.locator("#channel-messages li")).to_have_count(3)
        publish(4)
        expect(page.locator("#channel-messages li")).to_have_count(4)
        assert messages_shown(page) == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
    finally:
        stop(own_web)


def test_a_failed_task_shows_its_error_and_its_dead_letter_can_be_replayed_and_discarded(
    page: Page,
) -> None:
    marker = uuid.uuid4().hex[:8]
    choose_task(page, "always_fails")
    page.get_by_label("message", exact=True).fill(f"broken on purpose {marker}")
    page.get_by_role("button", name="Submit task").click()
    task_id = submitted_task_id(page, "always_fails")

    row = task_row(page, task_id)
    expect(row.locator('[data-field="state"]')).to_have_text("FAILURE")
    letter = page.locator(f'li.dead-letter[data-dead-letter-id="{task_id}"]')
    expect(letter).to_be_visible()
    expect(row.locator('[data-field="dead-letter"]')).to_be_visible()
    expect(letter.locator('[data-field="error-message"]')).to_have_text(
        re.compile(f"broken on purpose {marker}")
    )
    letter.get_by_role("button", name=f"Replay always_fails {task_id[:8]}").click()
    expect(page.locator("#dead-letter-status")).to_have_text(
        re.compile(f"^Replayed {task_id[:8]} as [0-9a-f]{{8}}")
    )
    expect(letter).to_have_count(0)

    replay_id_prefix = page.locator("#dead-letter-status").inner_text().split(" as ")[1][:8]
    replay_letter = page.locator(f'li.dead-letter[data-dead-letter-id^="{replay_id_prefix}"]')
    expect(replay_letter).to_be_visible()
    replay_letter.get_by_role("button", name=re.compile("^Discard")).click()
    expect(replay_letter).to_have_count(0)
    expect(page.locator("#dead-letter-status")).to_have_text(f"Discarded {replay_id_prefix}.")

    # The task's own page shows the error with its traceback.
    open_task_page(page, task_id)
    expect(page.locator('[data-field="state"]')).to_have_text("FAILURE")
    expect(page.locator('[data-field="error-message"]')).to_have_text(
        re.compile(f"broken on purpose {marker}")
    )
    expect(page.locator('[data-field="traceback"]')).to_contain_text("Traceback")


def test_a_reload_shows_the_same_tasks_and_channel_messages(page: Page) -> None:
    choose_task(page, "consume")
    page.get_by_label("number").fill("8")
    page.get_by_role("button", name="Submit task").click()
    task_id = submitted_task_id(page, "consume")
    expect(task_row(page, task_id).locator('[data-field="state"]')).to_have_text("SUCCESS")

    channel = unique_channel()
    page.get_by_label("Channel to watch").fill(channel)
    page.get_by_role("button", name="Watch", exact=True).click()
    expect(page.locator("#watch-status")).to_have_text(f"Live: watching {channel}.")
    page.get_by_label("Channel", exact=True).fill(channel)
    page.get_by_label("Message (JSON, or plain text)").fill("plain words")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#channel-messages li")).to_have_count(1)

    page.reload()

    row = task_row(page, task_id)
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS")
    expect(row.locator('[data-field="bar"]')).to_have_js_property("value", 100)
    expect(page.get_by_label("Channel to watch")).to_have_value(channel)
    expect(page.locator("#watch-status")).to_have_text(f"Live: watching {channel}.")
    expect(page.locator("#channel-messages li")).to_have_count(1)
    assert messages_shown(page) == ["plain words"]
    open_task_page(page, task_id)
    result = page.locator('[data-field="result"]')
    expect(result).to_be_visible()
    assert json.loads(result.inner_text()) == {"consumed": 8}


def test_the_queue_and_throughput_panel_is_drawn(page: Page) -> None:
    expect(page.locator('#queue-depths dd[data-queue="tasks"]')).to_have_text(
        re.compile(r"^\d+ waiting$")
    )
    expect(page.locator('#queue-depths dd[data-queue="relay"]')).to_have_text(
        re.compile(r"^\d+ waiting$")
    )
    expect(page.locator("#throughput-chart rect.bar-finished")).to_have_count(10)
    expect(page.locator("#throughput-caption")).to_contain_text("finished")


def test_the_articles_two_triggers_run_and_come_back_to_the_dashboard(page: Page) -> None:
    page.get_by_role("link", name="Run the article's producer (/prodcons)").click()
    page.wait_for_url(re.compile(r"/$"))
    newest = page.locator("tr.task-row").first
    expect(newest.locator('[data-field="name"]')).to_have_text("consume")
    expect(newest.locator('[data-field="state"]')).to_have_text("SUCCESS")
    task_id = newest.get_attribute("data-task-id") or ""

    page.get_by_role("link", name="Run the article's publisher (/pubsub)").click()
    page.wait_for_url(re.compile(r"/$"))
    page.get_by_role("button", name="Watch channel task:pubsub:channel").click()
    expect(page.locator("#channel-messages li").first).to_be_visible()
    assert all(number in range(9) for number in messages_shown(page))

    open_task_page(page, task_id)
    result = page.locator('[data-field="result"]')
    expect(result).to_be_visible()
    assert json.loads(result.inner_text())["consumed"] in range(9)
