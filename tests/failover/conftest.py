"""The failover tier's figures, printed in the terminal summary of every run (no -s needed),
and each test's reports kept on its item, so a fixture can tell at teardown that it failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# One line per server kind and phase, filled by the tests as they measure.
FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("failover figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
