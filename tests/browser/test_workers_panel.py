"""The workers panel in a real Chromium: a worker that stops beating is marked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import start_worker, stop

pytestmark = pytest.mark.browser

# The panel reads the workers every 5 s; a worker's last beacon ages past its
# staleness limit within seconds of its stopping. Both fit well inside this.
PANEL_WAIT_MS = 30_000


def test_a_worker_that_stops_beating_is_marked_in_the_workers_panel(
    page: Page, redis_url: str, log_dir: Path
) -> None:
    worker = start_worker("tasks", redis_url, log_dir, concurrency=1)
    try:
        row = page.locator(f'#worker-rows tr[data-worker="{worker.name}"]')
        expect(row).to_contain_text("alive", timeout=PANEL_WAIT_MS)
        expect(row.locator("td").first).to_have_text(re.compile(r"\btasks\b"))
        expect(row).to_have_attribute("data-alive", "true")
    finally:
        stop(worker)
    expect(row).to_have_attribute("data-alive", "false", timeout=PANEL_WAIT_MS)
    expect(row).to_contain_text("stopped beating")
