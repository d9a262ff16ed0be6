"""The web and the command line never import the worker's Celery app module."""

from __future__ import annotations

import subprocess
import sys

import pytest

WORKER_APP_MODULE = "tasks.celery"


@pytest.mark.parametrize(
    "module",
    ["webapp", "webapp.tasks.api", "webapp.channels.api", "taskrelay.cli", "taskrelay.up"],
)
def test_importing_the_web_or_the_cli_leaves_the_worker_app_unbuilt(module: str) -> None:
    code = (
        f"import importlib, sys; importlib.import_module({module!r}); "
        f"sys.exit(1 if {WORKER_APP_MODULE!r} in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_building_the_web_app_leaves_the_worker_app_unbuilt(redis_url: str) -> None:
    code = (
        "import sys; from webapp import create_app; "
        f"app = create_app({{'REDIS_URL': {redis_url!r}}}); "
        "app.extensions['taskrelay'].close(); "
        f"sys.exit(1 if {WORKER_APP_MODULE!r} in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
