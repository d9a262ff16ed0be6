"""Schedules over HTTP: create, read, change, pause, run now and delete; each schedule's runs."""

from __future__ import annotations

from flask import Flask

from webapp.schedules import api


def init_app(app: Flask) -> None:
    app.register_blueprint(api.bp)
