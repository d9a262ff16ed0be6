"""The task table and a task's page in a real Chromium: tabs, counts, filter, search, pages,
the timeline of a task that retried, the page kept live by one stream under load, and the
stream resumed after the web restarts."""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from taskrelay.waiting import free_port
from tests.browser.test_dashboard import start_web_on
from tests.support import stop

pytestmark = pytest.mark.browser

# The page shows this many tasks per page (task_table.js).
PAGE_SIZE = 50
# How many tasks the live-load test sends, and how long they may take to finish.
LOAD_TASKS = 1000
LOAD_TIMEOUT_MS = 90_000
# Threads that submit the load, so the tasks arrive faster than one client sends them.
SUBMITTERS = 8
# The states of a task not yet ended.
IN_FLIGHT_STATES = ("QUEUED", "STARTED", "PROGRESS", "RETRY")
# Generous bounds on the page's main thread while it follows the load: the longest
# gap between two frames (which also counts time the machine's two cores spent on
# the web, the workers and Redis), and the page's own work applying the events: in
# any one frame, and as a share of the run. A burst's new rows are built a few a frame
# (task_table.js, buildFresh), so its first frame is held to the same bound as the rest.
MAX_FRAME_GAP_MS = 1000
MAX_APPLY_FRAME_MS = 100
MAX_APPLY_SHARE = 0.25

# Measures the main thread: every long task the browser reports, every gap between
# two animation frames, and every value the Success count shows.
PROBE = """
() => {
  const probe = {longTasks: [], gaps: [], successCounts: [], running: true};
  probe.start = performance.now();
  window.probe = probe;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) probe.longTasks.push(entry.duration);
  }).observe({type: "longtask"});
  let last = performance.now();
  const frame = (now) => {
    probe.gaps.push(now - last);
    last = now;
    if (probe.running) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  // Events applied in each second, for the peak rate.
  let lastEvents = window.taskrelay.taskTable.applied.events;
  probe.perSecond = [];
  probe.sampler = setInterval(() => {
    const events = window.taskrelay.taskTable.applied.events;
    probe.perSecond.push(events - lastEvents);
    lastEvents = events;
  }, 1000);
  const count = document.querySelector('#state-tabs [data-count="SUCCESS"]');
  new MutationObserver(() => probe.successCounts.push(count.textContent))
    .observe(count, {childList: true, characterData: true, subtree: true});
}
"""

STOP_PROBE = """
() => {
  const probe = window.probe;
  probe.running = false;
  clearInterval(probe.sampler);
  return {elapsed: performance.now() - probe.start, longTasks: probe.longTasks,
          peakPerSecond: Math.max(0, ...probe.perSecond),
          gaps: probe.gaps, successCounts: probe.successCounts,
          applied: window.taskrelay.taskTable.applied};
}
"""


@pytest.fixture
def api(web: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web, timeout=10) as client:
        yield client


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    answer = api.post("/api/tasks", json=body)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["id"]
    return task_id


def wait_for_state(api: httpx.Client, task_id: str, state: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while api.get(f"/api/tasks/{task_id}").json()["state"] != state:
        assert time.monotonic() < deadline, f"task {task_id} never reached {state}"
        time.sleep(0.05)


def wait_until_nothing_is_in_flight(api: httpx.Client, timeout_s: float = 30) -> None:
    """Until no task is queued or running (the tasks of earlier tests included)."""
    deadline = time.monotonic() + timeout_s
    while any(api.get("/api/tasks/counts").json()[state] for state in IN_FLIGHT_STATES):
        assert time.monotonic() < deadline, "tasks still in flight"
        time.sleep(0.05)


def shown_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#task-rows tr.task-row").evaluate_all(
        "rows => rows.map(row => row.dataset.taskId)"
    )
    return ids


def count_shown(page: Page, state: str) -> int:
    text = page.locator(f'#state-tabs [data-count="{state}"]').inner_text()
    return int(text.replace(",", ""))


def expect_count(page: Page, state: str, value: int) -> None:
    expect(page.locator(f'#state-tabs [data-count="{state}"]')).to_have_text(f"{value:,}")


def test_state_tabs_show_live_counts_and_only_their_state(page: Page, api: httpx.Client) -> None:
    waiting = [submit(api, {"task": "consume", "args": [n], "countdown": 600}) for n in range(2)]
    failed = submit(api, {"task": "always_fails", "kwargs": {"message": "tab check"}})
    wait_for_state(api, failed, "FAILURE")
    try:
        page.reload()
        counts = api.get("/api/tasks/counts").json()
        expect_count(page, "FAILURE", counts["FAILURE"])
        expect_count(page, "all", counts["all"])

        failure_tab = page.get_by_role("tab", name=re.compile("^Failure"))
        failure_tab.click()
        expect(failure_tab).to_have_attribute("aria-selected", "true")
        expect(page.get_by_role("tabpanel")).to_have_attribute("aria-labelledby", "tab-FAILURE")
        # The click starts the tab's read; until it answers, the rows are the last list's
        # (the failed task among them), so wait for the read, not for the row.
        expect(page.locator("#task-table")).to_have_attribute("aria-busy", "false")
        expect(page.locator(f'tr.task-row[data-task-id="{failed}"]')).to_be_visible()
        states = page.locator("#task-rows tr.task-row").evaluate_all(
            "rows => rows.map(row => row.dataset.state)"
        )
        assert states and set(states) == {"FAILURE"}, states
        assert "state=FAILURE" in page.url

        # A failure elsewhere moves the count and joins the tab without a reload.
        before = count_shown(page, "FAILURE")
        another = submit(api, {"task": "always_fails", "kwargs": {"message": "live tab"}})
        expect_count(page, "FAILURE", before + 1)
        expect(page.locator(f'tr.task-row[data-task-id="{another}"]')).to_be_visible()

        page.get_by_role("tab", name=re.compile("^Queued")).click()
        for task_id in waiting:
            expect(page.locator(f'tr.task-row[data-task-id="{task_id}"]')).to_be_visible()
        states = page.locator("#task-rows tr.task-row").evaluate_all(
            "rows => rows.map(row => row.dataset.state)"
        )
        assert set(states) == {"QUEUED"}, states
    finally:
        for task_id in waiting:
            api.delete(f"/api/tasks/{task_id}")


def test_the_task_filter_and_the_id_search_narrow_the_list(page: Page, api: httpx.Client) -> None:
    noops = [submit(api, {"task": "noop"}) for _ in range(3)]
    consumed = submit(api, {"task": "consume", "args": [4]})
    wait_for_state(api, consumed, "SUCCESS")

    page.get_by_label("Task name").select_option("noop")
    for task_id in noops:
        expect(page.locator(f'tr.task-row[data-task-id="{task_id}"]')).to_be_visible()
    expect(page.locator(f'tr.task-row[data-task-id="{consumed}"]')).to_have_count(0)
    names = page.locator('#task-rows [data-field="name"]').all_inner_texts()
    assert set(names) == {"noop"}, names
    expect_count(page, "all", api.get("/api/tasks/counts?task=noop").json()["all"])
    assert "task=noop" in page.url

    page.get_by_label("Task name").select_option("")
    search = page.get_by_label("Task id starts with")
    search.fill(consumed[:13])
    search.press("Enter")
    expect(page.locator("#task-rows tr.task-row")).to_have_count(1)
    assert shown_ids(page) == [consumed]

    search.fill(str(uuid.uuid4())[:13])
    search.press("Enter")
    expect(page.locator("#task-rows tr.task-row")).to_have_count(0)
    expect(page.locator("#task-list-empty")).to_be_visible()

    # The view is in the address, so a reload shows the same list.
    search.fill(consumed[:13])
    search.press("Enter")
    expect(page.locator("#task-rows tr.task-row")).to_have_count(1)
    page.reload()
    expect(page.get_by_label("Task id starts with")).to_have_value(consumed[:13])
    expect(page.locator("#task-rows tr.task-row")).to_have_count(1)


def test_pages_go_older_and_back_without_skipping_or_repeating_a_task(
    page: Page, api: httpx.Client
) -> None:
    ours = [submit(api, {"task": "noop"}) for _ in range(PAGE_SIZE + 10)]
    page.get_by_label("Task name").select_option("noop")
    expect(page.locator(f'tr.task-row[data-task-id="{ours[-1]}"]')).to_be_visible()
    expect(page.locator("#task-rows tr.task-row")).to_have_count(PAGE_SIZE)
    first_page = shown_ids(page)

    older = page.get_by_role("button", name="Older tasks")
    older.click()
    expect(page.locator("#task-page-label")).to_have_text(re.compile("^Page 2"))
    # Tasks that arrive meanwhile go on top of the first page, not into this one.
    arrivals = [submit(api, {"task": "noop"}) for _ in range(3)]
    second_page = shown_ids(page)
    assert second_page, "the second page is empty"
    assert not set(first_page) & set(second_page), "a task was shown on both pages"
    # Our tasks are the newest noop tasks: the two pages hold each of them once.
    ours_seen = [task_id for task_id in first_page + second_page if task_id in set(ours)]
    assert len(ours_seen) == len(ours) and set(ours_seen) == set(ours)

    page.get_by_role("button", name="Newer tasks").click()
    expect(page.locator("#task-page-label")).to_have_text(re.compile("^Page 1"))
    for task_id in arrivals:
        expect(page.locator(f'tr.task-row[data-task-id="{task_id}"]')).to_be_visible()
    expect(page.get_by_role("button", name="Newer tasks")).to_be_disabled()


def test_a_row_that_arrives_live_while_the_first_page_read_is_on_its_way_stays(
    page: Page, api: httpx.Client
) -> None:
    # The page's first read of the list is answered by the server at once but handed
    # to the page only after a task submitted meanwhile has arrived on the stream:
    # the answer cannot hold that task, and the row must not vanish with it.
    held: list[tuple[Any, Any]] = []
    # Events of earlier tests' tasks would have the page read its list again meanwhile
    # (a quiet read, which marks the table not busy when its answer comes first).
    wait_until_nothing_is_in_flight(api)

    def hold_first_read(route: Any) -> None:
        if held:
            route.continue_()
            return
        held.append((route, route.fetch()))

    page.route(re.compile(r"/api/tasks\?"), hold_first_read)
    page.reload()
    expect(page.locator("#live-status")).to_have_text(re.compile("^Live"))
    deadline = time.monotonic() + 10
    while not held:
        assert time.monotonic() < deadline, "the page never read its first page"
        page.wait_for_timeout(20)
    expect(page.locator("#task-table")).to_have_attribute("aria-busy", "true")

    task_id = submit(api, {"task": "noop"})
    row = page.locator(f'tr.task-row[data-task-id="{task_id}"]')
    expect(row).to_be_visible()
    route, answer = held[0]
    assert task_id not in answer.text(), "the held answer was read after the submission"
    route.fulfill(response=answer)
    expect(page.locator("#task-table")).to_have_attribute("aria-busy", "false")
    # The answer was applied in the same turn that marked the table not busy.
    assert shown_ids(page)[0] == task_id, shown_ids(page)[:3]
    expect(row.locator('a[data-field="link"]')).to_have_count(1)
    page.unroute(re.compile(r"/api/tasks\?"))


def test_a_task_that_retried_then_succeeded_shows_each_state_in_its_timeline(
    page: Page, api: httpx.Client
) -> None:
    task_id = submit(api, {"task": "flaky", "kwargs": {"failures": 1}})
    expect(page.locator(f'tr.task-row[data-task-id="{task_id}"]')).to_be_visible()
    page.locator(f'tr.task-row[data-task-id="{task_id}"] a[data-field="link"]').click()
    expect(page).to_have_url(re.compile(f"/tasks/{task_id}$"))

    # The page follows the task live: it was opened before the retry ended.
    expect(page.locator('[data-field="state"]').first).to_have_text("SUCCESS", timeout=30_000)
    expect(page.locator('[data-field="result"]')).to_contain_text('"attempts": 2')
    timeline = page.locator("#timeline > li")
    expect(timeline.last).to_have_attribute("data-state", "SUCCESS")
    states = timeline.evaluate_all("items => items.map(item => item.dataset.state)")
    assert states[0] == "QUEUED", states
    retry = states.index("RETRY")
    assert "STARTED" in states[:retry], states
    assert "STARTED" in states[retry:], states
    retry_entry = timeline.nth(retry)
    expect(retry_entry.locator(".error-message")).to_have_text(
        re.compile("TransientError.*attempt 1 failed on purpose")
    )
    expect(retry_entry.locator(".timeline-note")).to_have_text("attempt 1 failed, to be retried")
    expect(timeline.nth(retry + 1).locator(".timeline-note")).to_have_text("attempt 2")
    expect(timeline.first.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    expect(page.locator('[data-field="worker"]')).to_have_text(re.compile("@"))
    expect(page.get_by_role("button", name="Revoke this task")).to_be_hidden()


def submit_load(web: str, count: int) -> list[str]:
    def send(n: int) -> list[str]:
        ids = []
        with httpx.Client(base_url=web, timeout=10) as client:
            for number in range(n):
                answer = client.post("/api/tasks", json={"task": "consume", "args": [number]})
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])
        return ids

    share = count // SUBMITTERS
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        batches = list(pool.map(send, [share] * SUBMITTERS))
    return [task_id for batch in batches for task_id in batch]


def test_the_page_stays_responsive_while_a_thousand_tasks_finish_on_its_stream(
    page: Page, web: str, api: httpx.Client
) -> None:
    expect(page.locator("#live-status")).to_have_text(re.compile("^Live"))
    baseline = api.get("/api/tasks/counts").json()["SUCCESS"]
    expect(page.locator('#state-tabs [data-count="SUCCESS"]')).not_to_have_text("…")
    page.evaluate(PROBE)

    started = time.monotonic()
    ids = submit_load(web, LOAD_TASKS)
    submitted_s = time.monotonic() - started
    page.wait_for_function(
        """target => Number(document.querySelector('#state-tabs [data-count="SUCCESS"]')
                   .textContent.replace(/,/g, '')) >= target""",
        arg=baseline + LOAD_TASKS,
        timeout=LOAD_TIMEOUT_MS,
    )
    finished_s = time.monotonic() - started
    figures = page.evaluate(STOP_PROBE)

    long_tasks = figures["longTasks"]
    gaps = sorted(figures["gaps"][1:])  # the first gap is from the probe's start
    blocked_ms = sum(long_tasks)
    applied = figures["applied"]
    print(
        f"\n{LOAD_TASKS} tasks: submitted in {submitted_s:.1f} s, all shown finished after "
        f"{finished_s:.1f} s; stream events applied {applied['events']} in {applied['frames']} "
        f"frames (largest batch {applied['largestBatch']}, "
        f"{applied['events'] / finished_s:.0f} events/s on average, "
        f"{figures['peakPerSecond']} in the busiest second; applying them took "
        f"{applied['scriptMs']:.0f} ms, longest frame {applied['longestMs']:.0f} ms); "
        f"frames {len(gaps)}, frame gap median {statistics.median(gaps):.0f} ms, "
        f"p99 {gaps[int(len(gaps) * 0.99) - 1]:.0f} ms, max {gaps[-1]:.0f} ms; "
        f"long tasks {len(long_tasks)}, longest {max(long_tasks, default=0):.0f} ms, "
        f"blocked {blocked_ms:.0f} ms of {figures['elapsed']:.0f} ms"
    )

    # Every task reached the page over the stream, not only through a count read.
    assert applied["events"] >= 2 * LOAD_TASKS, applied
    assert len(set(figures["successCounts"])) >= 10, "the Success count did not move live"
    # The first page holds the newest tasks, all ours, each shown finished.
    rows = page.locator("#task-rows tr.task-row")
    expect(rows.last).to_have_attribute("data-state", "SUCCESS")
    assert set(shown_ids(page)) <= set(ids)
    states = rows.evaluate_all("rows => rows.map(row => row.dataset.state)")
    assert states == ["SUCCESS"] * PAGE_SIZE, states
    assert gaps[-1] < MAX_FRAME_GAP_MS, f"the main thread froze for {gaps[-1]:.0f} ms"
    assert applied["longestMs"] < MAX_APPLY_FRAME_MS, applied
    assert applied["scriptMs"] < MAX_APPLY_SHARE * figures["elapsed"], applied


# Tasks that finish while the page's web process is down.
MISSED_TASKS = 300


def test_after_the_web_restarts_the_table_replays_the_changes_it_missed_in_one_burst(
    page: Page, web: str, api: httpx.Client, redis_url: str, log_dir: Path
) -> None:
    port = free_port()
    own_web = start_web_on(port, redis_url, log_dir)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#live-status")).to_have_text(re.compile("^Live"))
        # An event gives the page its place in the stream (before any, a reconnect
        # can only read the page and the counts again).
        first = submit(api, {"task": "consume", "args": [1]})
        expect(page.locator(f'tr.task-row[data-task-id="{first}"]')).to_have_attribute(
            "data-state", "SUCCESS"
        )
        stop(own_web)
        expect(page.locator("#live-status")).to_have_text(re.compile("interrupted"))

        # Through the session's other web process, which stays up throughout.
        ids = submit_load(web, MISSED_TASKS)
        for task_id in reversed(ids):
            wait_for_state(api, task_id, "SUCCESS")
        before = page.evaluate("window.taskrelay.taskTable.applied.events")
        page.evaluate(PROBE)
        own_web = start_web_on(port, redis_url, log_dir)

        expect(page.locator("#live-status")).to_have_text(re.compile("^Live"), timeout=40_000)
        expect_count(page, "SUCCESS", api.get("/api/tasks/counts").json()["SUCCESS"])
        rows = page.locator("#task-rows tr.task-row")
        expect(rows.first).to_have_attribute("data-state", "SUCCESS")
        assert set(shown_ids(page)) <= set(ids)
        figures = page.evaluate(STOP_PROBE)
    finally:
        stop(own_web)

    applied = figures["applied"]
    gaps = sorted(figures["gaps"][1:])
    replayed = applied["events"] - before
    print(
        f"\nresumed after the restart: {replayed} events replayed, largest batch in one frame "
        f"{applied['largestBatch']}, longest frame applying them {applied['longestMs']:.0f} ms, "
        f"longest gap between frames {gaps[-1]:.0f} ms"
    )
    # Every change made while the web was down came over the resumed stream.
    assert replayed >= 2 * MISSED_TASKS, applied
    assert gaps[-1] < MAX_FRAME_GAP_MS, f"the main thread froze for {gaps[-1]:.0f} ms"
    assert applied["longestMs"] < MAX_APPLY_FRAME_MS, applied


def test_a_queued_task_is_revoked_from_its_page_and_its_timeline_ends_revoked(
    page: Page, api: httpx.Client
) -> None:
    task_id = submit(api, {"task": "consume", "args": [9], "countdown": 120})
    page.goto(f"/tasks/{task_id}")
    expect(page.locator("#task-status")).to_have_text("Live: following this task.")
    page.get_by_role("button", name="Revoke this task").click()
    expect(page.locator('[data-field="state"]').first).to_have_text("REVOKED")
    expect(page.locator("#timeline > li").last).to_have_attribute("data-state", "REVOKED")
    expect(page.get_by_role("button", name="Revoke this task")).to_be_hidden()
    expect(page.locator('[data-field="no-outcome"]')).to_have_text("Revoked: it has no result.")
    assert api.get(f"/api/tasks/{task_id}").json()["state"] == "REVOKED"


def test_an_unknown_task_says_so_and_an_impossible_id_is_not_found(page: Page) -> None:
    page.goto(f"/tasks/{uuid.uuid4()}")
    expect(page.locator("#task-status")).to_have_text(re.compile("^No such task"))
    answer = page.goto("/tasks/" + "x" * 65)
    assert answer is not None and answer.status == 404
