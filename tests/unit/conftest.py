"""Fixtures of the unit tests: nothing here starts a server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from webapp import create_app

# Nothing listens here: building the app opens no connection.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture(scope="module")
def offline_app() -> Iterator[Flask]:
    """The web app, configured and built, for what needs no Redis (routes, documents)."""
    flask_app = create_app({"TESTING": True, "REDIS_URL": UNREACHABLE_REDIS_URL})
    yield flask_app
    flask_app.extensions["taskrelay"].close()
