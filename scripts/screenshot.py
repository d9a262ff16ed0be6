"""Take the README's screenshot of the dashboard from a running system.

    .venv/bin/python scripts/screenshot.py                 # starts its own system
    .venv/bin/python scripts/screenshot.py --url http://127.0.0.1:5000

Without --url it runs `taskrelay up` on free ports with its own Redis and a
throw-away var directory, gives it work at volume (a few thousand tasks of every
kind, some retried, some failed, a long task in progress, channel messages),
photographs the page with Playwright driving Debian's Chromium, and stops
everything again.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import ViewportSize, sync_playwright

from taskrelay import throwaway_system

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "dashboard.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_TIMEOUT_MS = 120_000
VIEWPORT: ViewportSize = {"width": 1280, "height": 1000}
SHOWCASE_CHANNEL = "news"
# Space kept below the last panel photographed, in pixels.
CLIP_MARGIN_PX = 16
# The volume the picture shows: this many quick tasks, sent by this many clients.
VOLUME_TASKS = 3000
SUBMITTERS = 4
# The volume's mix: every so many tasks, one fails for good and one retries first.
FAIL_EVERY = 150
RETRY_EVERY = 40


def give_it_work(base_url: str) -> None:
    """Thousands of tasks in every state worth seeing, and messages on two channels."""
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        list(pool.map(lambda share: _send_volume(base_url, share), range(SUBMITTERS)))
    with httpx.Client(base_url=base_url, timeout=10) as api:
        api.post("/api/tasks", json={"task": "consume", "args": [5], "countdown": 600})
        api.post("/api/tasks", json={"task": "long_task", "kwargs": {"steps": 100, "delay_s": 0.4}})
        for headline in ("Workers are up", "Relay delivers in order", "Flower is watching"):
            api.post(f"/api/channels/{SHOWCASE_CHANNEL}/messages", json={"data": headline})
        api.post("/api/channels/orders.eu/messages", json={"data": {"order": 1, "total": 9.5}})


def _send_volume(base_url: str, share: int) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as api:
        for n in range(share, VOLUME_TASKS, SUBMITTERS):
            body: dict[str, Any]
            if n % FAIL_EVERY == 0:
                body = {"task": "always_fails", "kwargs": {"message": f"order {n} was refused"}}
            elif n % RETRY_EVERY == 0:
                body = {"task": "flaky", "kwargs": {"failures": 1}}
            elif n % 3 == 0:
                body = {"task": "noop"}
            else:
                body = {"task": "consume", "args": [n]}
            api.post("/api/tasks", json=body).raise_for_status()


def photograph(base_url: str, output: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{base_url}/?channel={SHOWCASE_CHANNEL}")
            page.wait_for_selector("#channel-messages li >> nth=2")
            page.wait_for_selector("#worker-rows tr")
            page.wait_for_selector("#task-charts figure >> nth=2")
            page.wait_for_selector("li.dead-letter")
            page.wait_for_selector("#channel-rows tr >> nth=1")
            page.wait_for_function(
                "() => document.getElementById('watch-status').textContent.startsWith('Live')"
            )
            # A long task about a third of the way through shows a moving bar.
            page.wait_for_function(
                "() => [...document.querySelectorAll('#task-rows progress')]"
                ".some(bar => bar.value >= 30 && bar.value < 70)"
            )
            output.parent.mkdir(parents=True, exist_ok=True)
            # From the top down to the per-task charts: the forms and lists below
            # them are the same at any volume.
            charts = page.locator("section", has=page.locator("#charts-heading"))
            box = charts.bounding_box()
            assert box is not None
            bottom = box["y"] + box["height"] + CLIP_MARGIN_PX
            page.screenshot(
                path=str(output),
                full_page=True,
                clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": bottom},
            )
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running system's web URL (default: start one)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    options = parser.parse_args()
    if options.url:
        give_it_work(options.url)
        photograph(options.url, options.output)
    else:
        with throwaway_system.running("taskrelay-screenshot-") as system:
            give_it_work(system.base_url)
            photograph(system.base_url, options.output)
    print(f"saved {options.output}")


if __name__ == "__main__":
    main()
