"""Basic accessibility of the dashboard: names for every control, keyboard-only use."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support import wait_until

pytestmark = pytest.mark.browser

CONTROLS = "input, select, textarea, button, a[href], progress, [role=img], [role=log]"
# How many Tab presses may be needed to reach a control before the test gives up.
MAX_TABS = 60


def visible_controls_without_a_name(page: Page) -> list[str]:
    missing = []
    for control in page.locator(CONTROLS).all():
        if not control.is_visible():
            continue
        try:
            expect(control).to_have_accessible_name(re.compile(r"\S"), timeout=1)
        except AssertionError:
            missing.append(control.evaluate("e => e.outerHTML.slice(0, 160)"))
    return missing


def tab_to(page: Page, selector: str) -> None:
    """Press Tab until the element matching selector has the focus."""
    target = page.locator(selector)
    for _ in range(MAX_TABS):
        if target.evaluate("e => e === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} was not reached within {MAX_TABS} Tab presses")


def test_every_control_has_a_label_whichever_task_is_chosen(page: Page, web: str) -> None:
    # Put a task row, a dead letter and a channel on the page, so their controls count too.
    httpx.post(f"{web}/api/tasks", json={"task": "consume", "args": [1], "countdown": 60})
    httpx.post(f"{web}/api/channels/a11y.check/messages", json={"data": 1})
    page.reload()
    expect(page.locator("#channel-rows tr").first).to_be_visible()
    expect(page.locator("tr.task-row").first).to_be_visible()

    assert page.evaluate("document.documentElement.lang") == "en"
    ids = page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids)), "duplicate ids break label and description links"

    select = page.get_by_label("Task", exact=True)
    for task in select.locator("option").all_inner_texts():
        select.select_option(task)
        assert visible_controls_without_a_name(page) == [], f"with {task} chosen"


def test_the_submit_form_works_from_the_keyboard_alone(page: Page) -> None:
    tab_to(page, "#task-select")
    # Type-ahead chooses an option in a focused select, as a keyboard user would.
    page.keyboard.type("consume")
    expect(page.locator("#task-select")).to_have_value("consume")
    page.keyboard.press("Tab")
    expect(page.get_by_label("number")).to_be_focused()
    page.keyboard.type("6")
    page.keyboard.press("Enter")

    status = page.locator("#submit-status")
    expect(status).to_have_text(re.compile(r"^Submitted consume as [0-9a-f]{8}\."))
    short_id = status.inner_text().split(" as ")[1].rstrip(".")
    link = page.locator(f'[data-field="link"]:text-is("{short_id}")')
    row = page.locator("tr.task-row", has=link)
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS")

    # The submit button is reachable by Tab, and a bad value is reported by focus.
    page.get_by_label("number").fill("")
    tab_to(page, "#submit-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#param-consume-number-error")).to_have_text("'number' is required")
    expect(page.get_by_label("number")).to_be_focused()

    # The row's link opens the task's page from the keyboard, with its result.
    task_id = row.get_attribute("data-task-id")
    tab_to(page, f'tr.task-row[data-task-id="{task_id}"] a[data-field="link"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/tasks/{task_id}$"))
    expect(page.locator('[data-field="result"]')).to_contain_text('"consumed": 6')


def test_the_revoke_button_works_from_the_keyboard(page: Page, web: str) -> None:
    task_id = httpx.post(
        f"{web}/api/tasks", json={"task": "consume", "args": [2], "countdown": 120}
    ).json()["id"]
    page.reload()
    button = page.get_by_role("button", name=f"Revoke consume {task_id[:8]}")
    tab_to(page, f'tr.task-row[data-task-id="{task_id}"] button[data-action="revoke"]')
    page.keyboard.press("Enter")
    row = page.locator(f'tr.task-row[data-task-id="{task_id}"]')
    expect(row.locator('[data-field="state"]')).to_have_text("REVOKED")
    expect(button).to_be_hidden()
    # The focus stays in the row, on its link, for the next key press.
    expect(row.locator('a[data-field="link"]')).to_be_focused()


def test_the_workflow_view_names_its_graph_and_every_control(page: Page, web: str) -> None:
    step = {"task": "consume", "args": [1], "immutable": True}
    answer = httpx.post(f"{web}/api/workflows", json={"type": "chain", "steps": [step, step]})
    page.goto(f"/workflows/{answer.json()['id']}")
    expect(page.locator("#workflow-state")).to_have_text("SUCCESS")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert visible_controls_without_a_name(page) == []
    expect(page.get_by_role("img", name=re.compile("2 steps as a graph"))).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("consume")


def test_the_state_tabs_filter_and_search_work_from_the_keyboard(page: Page) -> None:
    tab_to(page, "#tab-all")
    page.keyboard.press("ArrowRight")
    queued = page.get_by_role("tab", name=re.compile("^Queued"))
    expect(queued).to_be_focused()
    expect(queued).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tabpanel")).to_have_attribute("aria-labelledby", "tab-QUEUED")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name=re.compile("^Revoked"))).to_have_attribute(
        "aria-selected", "true"
    )
    page.keyboard.press("Home")
    expect(page.get_by_role("tab", name=re.compile("^All"))).to_be_focused()
    # The tab list is one stop: the next Tab leaves it for the filter.
    page.keyboard.press("Tab")
    expect(page.get_by_label("Task name")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Task id starts with")).to_be_focused()
    page.keyboard.type("0000-no-such-task")
    page.keyboard.press("Enter")
    expect(page.locator("#task-list-empty")).to_be_visible()
    expect(page.get_by_role("table", name="Tasks")).to_be_visible()


def test_the_task_pages_turn_from_the_keyboard(page: Page, web: str) -> None:
    # Enough tasks for three pages of 50, whatever ran before.
    with httpx.Client(base_url=web, timeout=10) as client:
        for _ in range(101):
            assert client.post("/api/tasks", json={"task": "noop"}).status_code == 202
    page.reload()
    expect(page.locator("#task-rows tr.task-row")).to_have_count(50)
    tab_to(page, "#page-older")
    page.keyboard.press("Enter")
    expect(page.locator("#task-page-label")).to_have_text(re.compile("^Page 2"))
    expect(page.get_by_role("button", name="Older tasks")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Newer tasks")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#task-page-label")).to_have_text(re.compile("^Page 1"))


def test_a_tasks_page_names_every_control_and_its_timeline(page: Page, web: str) -> None:
    answer = httpx.post(f"{web}/api/tasks", json={"task": "always_fails"})
    task_id = answer.json()["id"]
    page.goto(f"/tasks/{task_id}")
    expect(page.locator("#dead-letter-section")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "en"
    assert visible_controls_without_a_name(page) == []
    expect(page.get_by_role("list", name="Timeline")).to_be_visible()
    tab_to(page, "#dead-letter-section button[data-action='replay']")
    page.keyboard.press("Enter")
    expect(page.locator("#dead-letter-status")).to_have_text(re.compile("^Replayed as [0-9a-f]{8}"))


def test_the_workers_and_the_charts_are_named(page: Page, web: str) -> None:
    task_id = httpx.post(f"{web}/api/tasks", json={"task": "consume", "args": [3]}).json()["id"]
    wait_until(
        lambda: httpx.get(f"{web}/api/tasks/{task_id}").json()["state"] == "SUCCESS",
        what="the task to succeed",
    )
    page.reload()  # the charts' first read then counts it
    expect(page.get_by_role("table", name="Workers")).to_contain_text("alive")
    chart = page.get_by_role("img", name=re.compile(r"^consume: [\d,]+ succeeded"))
    expect(chart).to_be_visible()
    percentiles = page.get_by_role("table", name="Wait and run time of consume")
    expect(percentiles.get_by_role("row", name=re.compile("^Run"))).to_contain_text(
        re.compile(r"\d+(\.\d+)? (ms|s)")
    )
    assert visible_controls_without_a_name(page) == []
