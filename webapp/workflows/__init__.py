"""Workflows over HTTP: submit chains, groups and chords of tasks, read, follow, revoke."""

from __future__ import annotations

from flask import Flask

from webapp.workflows import api


def init_app(app: Flask) -> None:
    app.register_blueprint(api.bp)
